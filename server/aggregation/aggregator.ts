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
import { countSketch, screenWeights, sketchTable, SKETCH_DIM } from './history-screen.ts';
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
  /** The worker that sent it (its history weights it under `workerMomentum`); absent: no history. */
  readonly worker?: string | undefined;
  /**
   * Gradients this contribution sums (a gateway's pre-aggregated update, server/cluster/pre-aggregator.ts):
   * absent or 1, one gradient; n > 1, the float32 sum of n gradients, counted as n towards the
   * buffer and the mean's divisor (`mean` rule only); 0, a log position whose gradient is summed
   * into a later record of the same combined update (admitted for its position, no gradient).
   */
  readonly weight?: number | undefined;
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
  /** Whose momentum sketches the checkpoint's `aggregator.history` slot holds, in its row order. */
  readonly history?: { worker: string; last: number }[] | undefined;
}

const NORM_WINDOW = 64;
const CENTER_SLOT = 'aggregator.center';
const HISTORY_SLOT = 'aggregator.history';
/** Workers whose momentum sketch is kept (4 KB each; the least recently seen goes first). */
const MAX_HISTORY = 4096;

export class Aggregator {
  private readonly optimizer: ServerOptimizer;
  private buffer: Contribution[] = [];
  /** Gradients the buffer holds: the sum of its contributions' weights. */
  private filled = 0;
  private norms: number[] = [];
  /** CenteredClip's starting point: a momentum average of the steps' combined gradients. */
  private readonly center: Float32Array | null;
  private seqAdmitted: number;
  /** Per worker: the momentum of its clipped gradients' sketches, and the log position it last moved at. */
  private history = new Map<string, { m: Float32Array; last: number }>();
  /** The history slot of a checkpoint, until restoreSnapshot says whose rows they are. */
  private pendingHistory: Float32Array | null = null;
  private sketch: Uint32Array | null = null;

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
  /** Trainable parameters (a gradient's length). */
  get trainSize(): number {
    return this.trainParams.length;
  }
  get seq(): number {
    return this.seqAdmitted;
  }
  /** Gradients waiting for the buffer to fill. */
  get buffered(): number {
    return this.filled;
  }

  /**
   * The next admitted gradient completes the buffer of a robust rule: its admission runs the robust
   * combine (clip, history screen, CenteredClip: 10-40 ms at 6 x 100k), not just a mean or one step.
   */
  get nextAdmitCombines(): boolean {
    return this.cfg.mode !== 'async' && this.cfg.rule !== 'mean' && this.filled + 1 >= this.bufferSize;
  }

  /** Gradients per step. */
  get bufferSize(): number {
    return this.cfg.mode === 'async' ? 1 : this.cfg.bufferSize;
  }

  judge(policy: StalenessPolicy, baseVersion: number): StalenessDecision {
    return judgeStaleness(policy, this.versionNow, baseVersion);
  }

  /**
   * The trainable weights `steps` optimizer steps ahead, as the optimizer's slots predict them,
   * written into `out` (the trainable prefix of a lease's weights). Deterministic in the state.
   */
  predictWeights(out: Float32Array, steps: number, jobLr: number): void {
    this.optimizer.predict(this.trainParams, this.stepLearningRate(jobLr), steps, out);
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
    const weight = c.weight ?? 1;
    // Covered by the record that carries its combined update's sum (logged right after it).
    if (weight === 0) return { step: this.versionNow + 1, stepped: false };
    if (weight !== 1 && (this.cfg.mode !== 'buffered' || this.cfg.rule !== 'mean')) throw new Error(`contribution #${c.seq} combines ${weight} gradients: only a buffered mean job admits combined updates`);
    if (c.scale === null) {
      // A pre-fix async record: its lr carries the discount; replay exactly what was done then.
      if (this.cfg.mode !== 'async' || this.buffer.length > 0) throw new Error(`contribution #${c.seq} has no discount recorded: only an async job logs such records`);
      this.optimizer.apply(this.trainParams, c.gradient, c.lr);
      return { step: ++this.versionNow, stepped: true };
    }
    const g = discounted(c.gradient, c.scale);
    // A combined update counts once in the window, at its mean gradient's norm (the mean rule never clips).
    this.norms.push(weight === 1 ? l2norm(g) : l2norm(g) / weight);
    if (this.norms.length > NORM_WINDOW) this.norms.splice(0, this.norms.length - NORM_WINDOW);
    if (c.excluded) {
      // Live, a contribution is excluded only while buffered, and the last one never waits: this
      // flush cannot happen in a log this runtime wrote, but keeps a buffer from waiting forever.
      if (last && this.flush()) return { step: this.versionNow, stepped: true };
      return { step: this.versionNow + 1, stepped: false };
    }
    this.buffer.push({ ...c, gradient: g });
    this.filled += weight;
    // A combined update is never split: one that overfills the buffer makes a step of more than
    // bufferSize gradients (still their exact mean).
    if (this.filled < this.bufferSize && !last) return { step: this.versionNow + 1, stepped: false };
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
    if (dropped.length > 0) {
      this.buffer = this.buffer.filter((b) => !seqs.has(b.seq));
      this.filled = this.buffer.reduce((n, b) => n + (b.weight ?? 1), 0);
    }
    return dropped;
  }

  /**
   * After a restart: the logged contributions of the checkpoint's buffer span (their norms are in the
   * snapshot); those marked excluded (before or after the checkpoint) stay out.
   */
  refill(cs: readonly Contribution[]): void {
    if (this.buffer.length > 0) throw new Error('refill into a non-empty buffer');
    this.buffer = cs.filter((c) => !c.excluded && c.weight !== 0).map((c) => ({ ...c, gradient: discounted(c.gradient, c.scale ?? 1) }));
    this.filled = this.buffer.reduce((n, b) => n + (b.weight ?? 1), 0);
  }

  private step(lr: number): void {
    const batch = this.buffer;
    const gs = batch.map((b) => b.gradient);
    const count = this.filled;
    this.buffer = [];
    this.filled = 0;
    let combined: Float32Array;
    if (this.cfg.mode === 'async' || (gs.length === 1 && count === 1)) {
      combined = gs[0]!;
    } else if (this.cfg.rule === 'mean') {
      // Summed in buffer order (a combined update's sum was added up at its gateway in arrival
      // order), divided by the gradients counted: one combined update of n equals its n gradients
      // admitted one by one, bit for bit, when their discounts are 1.
      combined = count === gs.length ? combine('mean', gs, { trim: 0, center: null }) : weightedMean(gs, count);
    } else {
      const bound = this.cfg.clipMultiple * median(this.norms);
      let clipped = gs.map((g) => clipToNorm(g, bound));
      const beta = this.cfg.workerMomentum ?? 0;
      if (beta > 0) {
        const w = this.screen(batch, clipped, beta);
        clipped = clipped.map((g, j) => (w[j]! < 1 ? discounted(g, w[j]!) : g));
      }
      combined = combine(this.cfg.rule, clipped, { trim: Math.floor(this.cfg.trimFraction * gs.length), center: this.center });
      if (this.center) {
        const b = this.cfg.serverMomentum;
        for (let i = 0; i < combined.length; i++) this.center[i] = b * this.center[i]! + (1 - b) * combined[i]!;
      }
    }
    this.optimizer.apply(this.trainParams, combined, lr);
    this.versionNow++;
  }

  /**
   * Updates the momentum sketch of each contribution's worker (in log order) and returns each
   * gradient's weight (history-screen.ts). Runs inside the step, so a checkpoint's momenta always
   * match its refilled buffer.
   */
  private screen(batch: readonly Contribution[], clipped: readonly Float32Array[], beta: number): number[] {
    this.sketch ??= sketchTable(clipped[0]!.length);
    const moms = batch.map((c, j) => {
      const sk = countSketch(clipped[j]!, this.sketch!);
      if (c.worker === undefined) return sk;
      const h = this.history.get(c.worker);
      if (!h) {
        this.history.set(c.worker, { m: sk, last: c.seq });
      } else {
        for (let i = 0; i < sk.length; i++) h.m[i] = beta * h.m[i]! + (1 - beta) * sk[i]!;
        h.last = c.seq;
        // Re-inserted: the map's order is least recently seen first.
        this.history.delete(c.worker);
        this.history.set(c.worker, h);
      }
      return this.history.get(c.worker)!.m.slice();
    });
    while (this.history.size > MAX_HISTORY) this.history.delete(this.history.keys().next().value!);
    return screenWeights(moms, this.cfg.screenKnee);
  }

  snapshot(): AggregatorSnapshot {
    const first = this.buffer[0];
    return {
      seq: this.seqAdmitted,
      buffered: first ? this.seqAdmitted - first.seq + 1 : 0,
      norms: [...this.norms],
      ...(this.history.size > 0 ? { history: [...this.history].map(([worker, h]) => ({ worker, last: h.last })) } : {}),
    };
  }

  restoreSnapshot(s: AggregatorSnapshot): void {
    this.norms = [...s.norms];
    this.history = new Map();
    const rows = this.pendingHistory;
    this.pendingHistory = null;
    if (!s.history || !rows) return;
    if (rows.length !== s.history.length * SKETCH_DIM) throw new Error(`checkpoint holds ${rows.length / SKETCH_DIM} worker histories for ${s.history.length} workers`);
    s.history.forEach((h, i) => this.history.set(h.worker, { m: rows.slice(i * SKETCH_DIM, (i + 1) * SKETCH_DIM), last: h.last }));
  }

  /** The optimizer's slots plus the aggregator's own (CenteredClip's centre), for checkpoints. */
  optimizerState(): OptimizerState {
    const st = this.optimizer.state();
    const own = [];
    if (this.center) own.push({ name: CENTER_SLOT, data: this.center.slice() });
    if (this.history.size > 0) {
      const rows = new Float32Array(this.history.size * SKETCH_DIM);
      let i = 0;
      for (const h of this.history.values()) rows.set(h.m, SKETCH_DIM * i++);
      own.push({ name: HISTORY_SLOT, data: rows });
    }
    return own.length > 0 ? { step: st.step, slots: [...st.slots, ...own] } : st;
  }

  /** Before restoreSnapshot (which names the history rows' workers). */
  restoreOptimizer(st: OptimizerState): void {
    const center = st.slots.find((s) => s.name === CENTER_SLOT);
    if (center && this.center) this.center.set(center.data);
    this.pendingHistory = st.slots.find((s) => s.name === HISTORY_SLOT)?.data ?? null;
    this.optimizer.restore({ step: st.step, slots: st.slots.filter((s) => s.name !== CENTER_SLOT && s.name !== HISTORY_SLOT) });
  }
}

/** The float32 sum of `vs` in order, divided by `count` (the gradients they hold), as robust.ts's mean. */
function weightedMean(vs: readonly Float32Array[], count: number): Float32Array {
  const out = new Float32Array(vs[0]!.length);
  for (const v of vs) for (let i = 0; i < out.length; i++) out[i] = out[i]! + v[i]!;
  for (let i = 0; i < out.length; i++) out[i] = out[i]! / count;
  return out;
}

/** g x scale, a copy (scale 1: the same values). The discount acts on the gradient, before any optimizer slot. */
export function discounted(g: Float32Array, scale: number): Float32Array {
  const out = g.slice();
  if (scale !== 1) for (let i = 0; i < out.length; i++) out[i] = out[i]! * scale;
  return out;
}
