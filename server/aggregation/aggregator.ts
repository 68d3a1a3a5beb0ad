// One job's Aggregator: owns the model's flat parameter vector, the version (optimizer steps
// taken), the server optimizer's slots and the gradient buffer, and decides how accepted gradients
// become steps (aggregation-config.ts): async (one gradient, one step), buffered (K combined, plain
// or robust), local (K pseudo-gradients, outer Nesterov). Synchronous and deterministic: replaying
// the logged contributions in order reproduces the weights bit for bit.
//
// Exclusion (a worker quarantined by spot checks): its contributions still waiting in the buffer
// are dropped before the step that would combine them (`exclude`); the runtime marks them in the log,
// and replay admits such a record as `excluded` (its log position and norm, never into a step), so
// the weights come out the same. Async mode has nothing to drop: every gradient is one step at once,
// already in the weights when a spot check can judge it.

import { createOptimizer, type OptimizerConfig, type OptimizerState, type ServerOptimizer } from './optimizers.ts';
import { judgeStaleness, type StalenessDecision, type StalenessPolicy } from './staleness.ts';
import { clipToNorm, combine, l2norm, median } from './robust.ts';
import type { AggregationConfig } from './aggregation-config.ts';

/** One accepted gradient, as logged. `seq` is its position in the job's update log. */
export interface Contribution {
  readonly seq: number;
  readonly gradient: Float32Array;
  /**
   * Staleness discount applied to the gradient before the optimizer sees it. null: a record from
   * before the fix, whose `lr` already carries the discount (replayed as it was applied).
   */
  readonly scale: number | null;
  /** The learning rate this contribution's step uses if it completes the buffer. */
  readonly lr: number;
  /**
   * Dropped from the buffer before its step (its worker was quarantined), as the log says: admitted
   * for its log position and its norm (the clipping window saw it), never combined into a step.
   */
  readonly excluded?: boolean | undefined;
}

export interface Admission {
  /** The version the contribution is (or will be) part of: the step it completes or waits for. */
  readonly step: number;
  /** True: the buffer was complete and one optimizer step was taken. */
  readonly stepped: boolean;
}

/** What a checkpoint keeps besides weights and slots (JSON). */
export interface AggregatorSnapshot {
  /** Last log position admitted (in the buffer or in the weights). */
  readonly seq: number;
  /**
   * The log span the buffer covers: positions seq-buffered+1 .. seq. Those not marked excluded in
   * the log wait in the buffer (without exclusions: exactly `buffered` contributions).
   */
  readonly buffered: number;
  /** Norms of the recent admitted gradients (the robust rules clip to a multiple of their median). */
  readonly norms: number[];
}

const NORM_WINDOW = 64;
const CENTER_SLOT = 'aggregator.center';

export class Aggregator {
  private readonly optimizer: ServerOptimizer;
  private buffer: Contribution[] = [];
  private norms: number[] = [];
  /** CenteredClip's starting point: a momentum average of the steps' combined gradients. */
  private readonly center: Float32Array | null;
  private seqAdmitted: number;

  constructor(
    readonly cfg: AggregationConfig,
    optimizer: OptimizerConfig,
    /** The trainable prefix of the model's flat weights, updated in place. */
    private readonly trainParams: Float32Array,
    private versionNow: number,
    seq: number,
  ) {
    const outer: OptimizerConfig = cfg.mode === 'local' ? { kind: 'sgd', learningRate: cfg.outerLearningRate, momentum: cfg.outerMomentum, nesterov: true } : optimizer;
    this.optimizer = createOptimizer(outer, trainParams.length);
    this.center = cfg.rule === 'centered-clip' ? new Float32Array(trainParams.length) : null;
    this.seqAdmitted = seq;
  }

  get version(): number {
    return this.versionNow;
  }
  get seq(): number {
    return this.seqAdmitted;
  }
  /** Gradients waiting for the buffer to fill. */
  get buffered(): number {
    return this.buffer.length;
  }
  /** Gradients per step. */
  get bufferSize(): number {
    return this.cfg.mode === 'async' ? 1 : this.cfg.bufferSize;
  }

  judge(policy: StalenessPolicy, baseVersion: number): StalenessDecision {
    return judgeStaleness(policy, this.versionNow, baseVersion);
  }

  /** The learning rate a step applies with: the outer one in `local` mode, the job's x learningRateScale in `buffered`. */
  stepLearningRate(jobLr: number): number {
    if (this.cfg.mode === 'local') return this.cfg.outerLearningRate;
    return this.cfg.mode === 'buffered' ? jobLr * (this.cfg.learningRateScale ?? 1) : jobLr;
  }

  /**
   * Adds one accepted gradient (already validated and logged); steps when the buffer is full, or
   * with what it holds when `last` (the job's last shard: nothing else will come to fill it).
   */
  admit(c: Contribution, last = false): Admission {
    if (c.seq !== this.seqAdmitted + 1) throw new Error(`contribution #${c.seq} admitted after #${this.seqAdmitted}`);
    this.seqAdmitted = c.seq;
    if (c.scale === null) {
      // A pre-fix async record: its lr carries the discount; replay exactly what was done then.
      if (this.cfg.mode !== 'async' || this.buffer.length > 0) throw new Error(`contribution #${c.seq} has no discount recorded: only an async job logs such records`);
      this.optimizer.apply(this.trainParams, c.gradient, c.lr);
      return { step: ++this.versionNow, stepped: true };
    }
    const g = discounted(c.gradient, c.scale);
    this.norms.push(l2norm(g));
    if (this.norms.length > NORM_WINDOW) this.norms.splice(0, this.norms.length - NORM_WINDOW);
    if (c.excluded) {
      // Live, a contribution is excluded only while buffered, and the last one never waits: this
      // flush cannot happen in a log this runtime wrote, but keeps a buffer from waiting forever.
      if (last && this.flush()) return { step: this.versionNow, stepped: true };
      return { step: this.versionNow + 1, stepped: false };
    }
    this.buffer.push({ ...c, gradient: g });
    if (this.buffer.length < this.bufferSize && !last) return { step: this.versionNow + 1, stepped: false };
    this.step(c.lr);
    return { step: this.versionNow, stepped: true };
  }

  /**
   * One (partial) step with what the buffer holds, at the lr of its last contribution (as `admit`
   * with `last`): the job ends, or the log shows the next gradient names a later step. False, and
   * nothing changes, when the buffer is empty.
   */
  flush(): boolean {
    const last = this.buffer.at(-1);
    if (!last) return false;
    this.step(last.lr);
    return true;
  }

  /** Log positions of the contributions waiting in the buffer, ascending. */
  bufferedSeqs(): number[] {
    return this.buffer.map((b) => b.seq);
  }

  /**
   * Drops the buffered contributions whose seq is in `seqs` (their worker was found wrong) before the
   * step that would combine them; returns the seqs dropped. Their norms stay in the clipping window,
   * as replay (which admits them `excluded`) leaves them. The caller logs the exclusion.
   */
  exclude(seqs: ReadonlySet<number>): number[] {
    const dropped = this.buffer.filter((b) => seqs.has(b.seq)).map((b) => b.seq);
    if (dropped.length > 0) this.buffer = this.buffer.filter((b) => !seqs.has(b.seq));
    return dropped;
  }

  /**
   * After a restart: the logged contributions of the checkpoint's buffer span (their norms are in the
   * snapshot); those marked excluded (before or after the checkpoint) stay out.
   */
  refill(cs: readonly Contribution[]): void {
    if (this.buffer.length > 0) throw new Error('refill into a non-empty buffer');
    this.buffer = cs.filter((c) => !c.excluded).map((c) => ({ ...c, gradient: discounted(c.gradient, c.scale ?? 1) }));
  }

  private step(lr: number): void {
    const gs = this.buffer.map((b) => b.gradient);
    this.buffer = [];
    let combined: Float32Array;
    if (this.cfg.mode === 'async' || gs.length === 1) {
      combined = gs[0]!;
    } else if (this.cfg.rule === 'mean') {
      combined = combine('mean', gs, { trim: 0, center: null });
    } else {
      const bound = this.cfg.clipMultiple * median(this.norms);
      const clipped = gs.map((g) => clipToNorm(g, bound));
      combined = combine(this.cfg.rule, clipped, { trim: Math.floor(this.cfg.trimFraction * gs.length), center: this.center });
      if (this.center) {
        const b = this.cfg.serverMomentum;
        for (let i = 0; i < combined.length; i++) this.center[i] = b * this.center[i]! + (1 - b) * combined[i]!;
      }
    }
    this.optimizer.apply(this.trainParams, combined, lr);
    this.versionNow++;
  }

  snapshot(): AggregatorSnapshot {
    const first = this.buffer[0];
    return { seq: this.seqAdmitted, buffered: first ? this.seqAdmitted - first.seq + 1 : 0, norms: [...this.norms] };
  }

  restoreSnapshot(s: AggregatorSnapshot): void {
    this.norms = [...s.norms];
  }

  /** The optimizer's slots plus the aggregator's own (CenteredClip's centre), for checkpoints. */
  optimizerState(): OptimizerState {
    const st = this.optimizer.state();
    return this.center ? { step: st.step, slots: [...st.slots, { name: CENTER_SLOT, data: this.center.slice() }] } : st;
  }

  restoreOptimizer(st: OptimizerState): void {
    const center = st.slots.find((s) => s.name === CENTER_SLOT);
    if (center && this.center) this.center.set(center.data);
    this.optimizer.restore({ step: st.step, slots: st.slots.filter((s) => s.name !== CENTER_SLOT) });
  }
}

/** g x scale, a copy (scale 1: the same values). The discount acts on the gradient, before any optimizer slot. */
export function discounted(g: Float32Array, scale: number): Float32Array {
  const out = g.slice();
  if (scale !== 1) for (let i = 0; i < out.length; i++) out[i] = out[i]! * scale;
  return out;
}
