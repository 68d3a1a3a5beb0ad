// A job's checkpoint writer: serializes checkpoint writes, keeps the best evaluated version apart,
// and compacts the update log to what the kept checkpoints can still need. Owns the write queue,
// the last written version and the best checkpoint. The runtime decides WHEN (a snapshot taken
// synchronously, so it is one version); this decides how it becomes durable. Packing and hashing
// run in the checkpoint thread (checkpoint-encoder.ts), started as soon as a write is queued.

import type { TensorSpec } from '../../shared/codec/tensor-codec.ts';
import type { OptimizerState } from '../aggregation/optimizers.ts';
import type { EvalResult } from '../evaluation/evaluator.ts';
import type { LossName } from '../../shared/protocol/messages.ts';
import type { Checkpoints } from './checkpoint-store.ts';
import type { StateStore } from './state-store.ts';
import { bestMetricFor, isBetter, type BestCheckpoint } from './best-checkpoint.ts';
import { sharedCheckpointEncoder, type CheckpointEncoder } from './checkpoint-encoder.ts';
import type { CheckpointInput, EncodedCheckpoint } from './checkpoint-encoding.ts';

export interface CheckpointSnapshot {
  readonly version: number;
  /** All weights, flat (a copy: the model keeps training while this is written). Handed over. */
  readonly weights: Uint8Array;
  /** Copies of the slots (ServerOptimizer.state()). Handed over: moved to the checkpoint thread. */
  readonly optimizer: OptimizerState;
  /** JSON the runtime needs to resume; `aggregator.seq/buffered` say where its log replay starts. */
  readonly runtime: { aggregator?: { seq: number; buffered: number } } & Record<string, unknown>;
}

export interface CheckpointPolicyDeps {
  readonly jobId: string;
  readonly store: Checkpoints;
  readonly bestStore?: Checkpoints | undefined;
  readonly state: StateStore;
  readonly now: () => number;
  readonly warn: (msg: string) => void;
  readonly modelTopology: unknown;
  readonly allSpecs: readonly TensorSpec[];
  readonly loss: LossName;
  /** Packs and hashes checkpoints; default: the process's checkpoint thread. */
  readonly encoder?: CheckpointEncoder | undefined;
}

/** The log position from which a checkpoint replays: records after it must keep their gradients. */
export function replayFrom(version: number, runtime: unknown): number {
  const agg = (runtime as CheckpointSnapshot['runtime'] | undefined)?.aggregator;
  return agg ? agg.seq - agg.buffered : version;
}

export class CheckpointPolicy {
  private saving: Promise<void> = Promise.resolve();
  private stopped = false;
  lastVersion: number | null;
  private bestSeen: BestCheckpoint | null = null;
  private readonly encoder: CheckpointEncoder;
  /** The best version whose weights are on disk (shown once written). */
  bestSaved: BestCheckpoint | null = null;

  constructor(
    private readonly deps: CheckpointPolicyDeps,
    lastVersion: number | null,
  ) {
    this.lastVersion = lastVersion;
    this.encoder = deps.encoder ?? sharedCheckpointEncoder();
  }

  /** Starts encoding now (in parallel with the writes queued before); the queue awaits it. */
  private encode(cp: CheckpointInput): Promise<EncodedCheckpoint> {
    const encoded = this.encoder.encode(cp);
    encoded.catch(() => {}); // reported when the queue reaches it, not as an unhandled rejection
    return encoded;
  }

  /** Checkpoints still queued are dropped (JobRuntime.dispose; close() settles the queue first). */
  stop(): void {
    this.stopped = true;
  }

  /** Queues the write of `cp`; resolves once it is on disk (or failed and was reported). */
  write(cp: CheckpointSnapshot): Promise<void> {
    const { deps } = this;
    const optSpecs: TensorSpec[] = cp.optimizer.slots.map((s) => ({ name: s.name, shape: [s.data.length], dtype: 'float32' }));
    const encoded = this.encode({
      modelTopology: deps.modelTopology,
      weightSpecs: deps.allSpecs,
      weights: cp.weights,
      optimizer: cp.optimizer.slots.map((s) => s.data),
      state: { version: cp.version, createdAt: deps.now(), runtime: cp.runtime, optimizer: { step: cp.optimizer.step, specs: optSpecs } },
    });
    const next = this.saving.then(async () => {
      // The log records this checkpoint covers are committed first (group commit).
      await deps.state.durable();
      const bytes = await encoded;
      // A runtime stopped without settling (a cluster owner that stepped down) saves nothing more:
      // the store would read the token of whatever term this process holds by then.
      if (this.stopped) return;
      await deps.store.save(bytes);
      this.lastVersion = cp.version;
      // Gradients stay in the log back to the oldest kept checkpoint's replay start, so falling
      // back to any of them (the newest may be corrupt) can still replay forward. Unverified states
      // suffice: a superset of the usable checkpoints only keeps more of the log, and the newest
      // checkpoint is not read back and hashed (~16 MB at 1M parameters) after every write.
      const kept = await deps.store.listInfos();
      if (kept.length > 0) deps.state.compactUpdates(deps.jobId, Math.min(...kept.map((k) => replayFrom(k.version, k.runtime))));
      await deps.state.durable();
    });
    this.saving = next.catch((err: Error) => deps.warn(`job ${deps.jobId}: checkpoint v${cp.version} failed: ${err.message}`));
    return this.saving;
  }

  /** Keeps the evaluated weights when they are the best so far by the job's metric (written in the queue). */
  considerBest(r: EvalResult, weights: Float32Array): void {
    const { deps } = this;
    const store = deps.bestStore;
    const metric = bestMetricFor(deps.loss);
    if (!store || !isBetter(metric, r, this.bestSeen)) return;
    const best: BestCheckpoint = { version: r.version, metric, testAccuracy: r.testAccuracy, testLoss: r.testLoss, at: r.at };
    this.bestSeen = best;
    const encoded = this.encode({
      modelTopology: deps.modelTopology,
      weightSpecs: deps.allSpecs,
      weights: new Uint8Array(weights.buffer, weights.byteOffset, weights.byteLength).slice(),
      optimizer: new Uint8Array(0),
      state: { version: best.version, createdAt: deps.now(), runtime: { best }, optimizer: { step: 0, specs: [] } },
    });
    const next = this.saving.then(async () => {
      const bytes = await encoded;
      if (this.stopped) return;
      await store.save(bytes);
      this.bestSaved = best;
    });
    this.saving = next.catch((err: Error) => deps.warn(`job ${deps.jobId}: best checkpoint v${best.version} failed: ${err.message}`));
  }

  async restoreBest(): Promise<void> {
    const cp = await this.deps.bestStore?.loadLatest();
    const best = (cp?.state.runtime as { best?: BestCheckpoint } | undefined)?.best;
    if (best) this.bestSeen = this.bestSaved = best;
  }

  /** Waits for the writes queued so far. */
  settle(): Promise<void> {
    return this.saving;
  }
}
