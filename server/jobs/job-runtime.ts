// One running job: wires its lease manager, aggregation (staleness rule + server optimizer),
// evaluator and checkpoints around the job's model. Owns the model's variables, the version
// counter, the job's status, metric history and counters. Every push is applied synchronously on
// the event loop, so a checkpoint snapshot (weights + optimizer + shard ledger) is one version.
//
// Acknowledgement rule: a push is acknowledged "applied" only after its update record (gradient,
// learning rate used, shard) is committed to the StateStore. After a crash the job reopens from
// the newest valid checkpoint and replays the logged updates after it, so every acknowledged
// gradient is in the model exactly once and the shard ledger matches the weights.

import type { Clock } from '../../shared/clock.ts';
import { ErrorCode, fail, type Failure } from '../../shared/protocol/errors.ts';
import type { GradientPush, JobDescriptor, JobStatus, JobUpdate, LeaseAck, PushAck } from '../../shared/protocol/messages.ts';
import { decodeTensors, encodeTensors, sameSpecs, sizeOf, type TensorSpec } from '../../shared/codec/tensor-codec.ts';
import { buildModel, packWeights, trainableSpecs, weightSpecs } from '../../shared/training/model.ts';
import { LeaseManager, type LedgerSnapshot, type WorkerId } from '../leases/lease-manager.ts';
import { judgeStaleness } from '../aggregation/staleness.ts';
import { createOptimizer, type OptimizerState, type ServerOptimizer } from '../aggregation/optimizers.ts';
import { Evaluator, type EvalResult } from '../evaluation/evaluator.ts';
import { ThreadedEvaluator } from '../evaluation/threaded-evaluator.ts';
import type { JobData } from '../data/job-data.ts';
import { Sharder } from '../data/sharder.ts';
import type { CheckpointStore } from '../storage/checkpoint-store.ts';
import type { StateStore } from '../storage/state-store.ts';
import { leaseDeadlineMs, policyFor, updateSpeed } from '../leases/deadlines.ts';
import type { Lease } from '../leases/lease-manager.ts';
import type { JobConfig } from './job-config.ts';
import { bestMetricFor, isBetter, type BestCheckpoint } from '../storage/best-checkpoint.ts';
import { acceptGradient, WeightsSnapshots } from '../aggregation/wire.ts';
import { negotiate, tensorSizes, type Encoding, type WeightEncoding } from '../../shared/codec/compression.ts';
import { RowCacheBook } from '../data/row-cache-book.ts';
import type { RowCacheClaim, WeightsPayload } from '../../shared/protocol/messages.ts';

export interface Logger {
  info(msg: string): void;
  warn(msg: string): void;
}

export interface JobRuntimeDeps {
  readonly clock: Clock;
  /** This job's examples. */
  readonly data: JobData;
  /** Starting weights (a fine-tuned model's own), used instead of the initializers for a new job. */
  readonly initialWeights?: Float32Array | undefined;
  readonly store: CheckpointStore;
  readonly state: StateStore;
  readonly log: Logger;
  readonly newId: () => string;
  /** Evaluate in a worker thread so pushes never wait for a test pass (server/evaluation/threaded-evaluator.ts). */
  readonly evaluationThread?: boolean | undefined;
  /** Where the best evaluated version's weights are kept (never pruned); none: not kept. */
  readonly bestStore?: CheckpointStore | undefined;
}

export interface Counters {
  applied: number;
  refused: Record<string, number>;
  samplesApplied: number;
  bytesDown: number;
  bytesUp: number;
  /** Histogram of applied staleness: index = tau (last bucket collects the rest). */
  staleness: number[];
}

interface RuntimeSnapshot {
  status: JobStatus;
  ledger: LedgerSnapshot;
  metrics: EvalResult[];
  trainLoss: { version: number; loss: number }[];
  counters: Counters;
  createdAt: number;
  finishedAt: number | null;
  activeMs: number;
}

export interface JobSummary {
  id: string;
  name: string;
  description: string;
  status: JobStatus;
  batchSize: number;
  version: number;
  epoch: number;
  maxEpochs: number;
  targetAccuracy: number | null;
  progress: number;
  workers: number;
  samplesPerSec: number;
  task: JobConfig['task'];
  metrics: { testAccuracy: number | null; testLoss: number | null; testMae: number | null; testRmse: number | null };
  updates: { applied: number; refused: Record<string, number> };
  shards: { perEpoch: number; done: number; leased: number; waiting: number; quarantined: { epoch: number; shard: number; failures: number; workers: number }[] };
  bytes: { down: number; up: number };
  samplesApplied: number;
  createdAt: number;
  finishedAt: number | null;
  lastCheckpointVersion: number | null;
  /** The best evaluated version whose weights are kept for download (`?which=best`), or null. */
  best: BestCheckpoint | null;
}

const STALENESS_BUCKETS = 33;
const MAX_ACKS_KEPT = 20_000;
const MAX_TRAIN_LOSS_KEPT = 5_000;
const EVAL_SHARE_INV = 5;

/** The bytes of a packed float32 gradient as one Float32Array (copied once if unaligned). */
function flatFloats(bytes: Uint8Array): Float32Array {
  const b = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
}

export class JobRuntime {
  private version = 0;
  status: JobStatus = 'running';
  private metrics: EvalResult[] = [];
  private trainLoss: { version: number; loss: number }[] = [];
  private counters: Counters = { applied: 0, refused: {}, samplesApplied: 0, bytesDown: 0, bytesUp: 0, staleness: new Array<number>(STALENESS_BUCKETS).fill(0) };
  private readonly acks = new Map<string, { workerId: WorkerId; ack: Extract<PushAck, { ok: true }> }>();
  private readonly leases: LeaseManager;
  private readonly sharder: Sharder;
  /** All weights, flat, in allSpecs order (trainable first): the model IS this vector here. */
  private readonly params: Float32Array;
  /** The trainable prefix of params, which gradients update. */
  private readonly trainParams: Float32Array;
  private readonly trainSpecs: TensorSpec[];
  private readonly allSpecs: TensorSpec[];
  private readonly evaluator: Evaluator | ThreadedEvaluator;
  /** One weights snapshot per version (and its encodings), shared by every lease, evaluation and checkpoint. */
  private readonly snapshots: WeightsSnapshots;
  /** Which training rows each worker's row cache holds (only the others travel). */
  private readonly rowCaches: RowCacheBook;
  private lastEvalVersion = -1;
  private lastEvalEndedAt = 0;
  private lastEvalMs = 0;
  /**
   * Periodic evaluations may take at most 1/EVAL_SHARE_INV of the coordinator's time (a CNN's
   * test pass costs a second or more): the next one waits EVAL_SHARE_INV-1 times the last one's
   * length. Epoch ends and the stop condition are evaluated regardless.
   */
  private evalBudgetAllows(): boolean {
    return this.deps.clock.now() - this.lastEvalEndedAt >= (EVAL_SHARE_INV - 1) * this.lastEvalMs;
  }
  /** The wall-time limit (stop.maxMinutes) was reached: the next evaluation finishes the job. */
  private timeUp = false;
  /** True while the final version is evaluated: no lease is granted and no push applied. */
  private finalizing = false;
  private evaluating: Promise<void> | null = null;
  private saving: Promise<void> = Promise.resolve();
  private lastCheckpointVersion: number | null = null;
  private recent: { at: number; samples: number }[] = [];
  private createdAt: number;
  private finishedAt: number | null = null;
  private activeMs = 0;
  private activeSince: number | null;
  private listeners = new Set<(u: JobUpdate) => void>();
  /** While draining (graceful shutdown) no lease is granted; pushes still land. */
  private draining = false;
  /** Measured ms per example per worker (EWMA), for adaptive lease deadlines. */
  private readonly speeds = new Map<WorkerId, number>();
  /** The best evaluation so far (compared synchronously) and the one whose weights are saved. */
  private bestSeen: BestCheckpoint | null = null;
  private bestSaved: BestCheckpoint | null = null;
  /** Workers working on this job right now (set by the transport). */
  readonly workers = new Set<WorkerId>();

  private constructor(
    readonly id: string,
    readonly config: JobConfig,
    shape: { params: Float32Array; allSpecs: TensorSpec[]; trainSpecs: TensorSpec[] },
    private readonly optimizer: ServerOptimizer,
    private readonly deps: JobRuntimeDeps,
    snapshot: RuntimeSnapshot | null,
    version: number,
  ) {
    this.sharder = new Sharder(deps.data.count('train'), config.batchSize, config.seed);
    this.leases = new LeaseManager(
      { shardsPerEpoch: this.sharder.shardsPerEpoch, maxEpochs: config.stop.maxEpochs, clock: deps.clock, newId: deps.newId, maxShardFailures: 8, minFailingWorkers: 3 },
      snapshot?.ledger,
    );
    this.trainSpecs = shape.trainSpecs;
    this.allSpecs = shape.allSpecs;
    this.params = shape.params;
    this.trainParams = shape.params.subarray(0, shape.trainSpecs.reduce((n, t) => n + sizeOf(t.shape), 0));
    this.snapshots = new WeightsSnapshots(tensorSizes(shape.allSpecs));
    this.rowCaches = new RowCacheBook(deps.data.count('train'));
    const stepSpec = { loss: config.loss, fromLogits: config.fromLogits, data: deps.data.spec };
    this.evaluator = deps.evaluationThread
      ? new ThreadedEvaluator(config.modelTopology, stepSpec, deps.data, (why) => deps.log.warn(`job ${id}: evaluating on the event loop (no worker thread: ${why})`))
      : new Evaluator(config.modelTopology, stepSpec, deps.data);
    this.version = version;
    this.createdAt = snapshot?.createdAt ?? deps.clock.now();
    if (snapshot) {
      this.status = snapshot.status;
      this.metrics = snapshot.metrics;
      this.trainLoss = snapshot.trainLoss;
      this.counters = snapshot.counters;
      this.finishedAt = snapshot.finishedAt;
      this.activeMs = snapshot.activeMs;
      this.lastEvalVersion = snapshot.metrics.at(-1)?.version ?? -1;
      this.lastCheckpointVersion = version;
    }
    this.activeSince = this.status === 'running' ? deps.clock.now() : null;
  }

  /** A new job with freshly initialised weights; checkpoint v0 is written before it returns. */
  static async create(id: string, config: JobConfig, deps: JobRuntimeDeps): Promise<JobRuntime> {
    const initial = deps.initialWeights ? new Uint8Array(deps.initialWeights.buffer, deps.initialWeights.byteOffset, deps.initialWeights.byteLength) : null;
    const shape = await JobRuntime.modelShape(config, initial);
    const opt = createOptimizer(config.optimizer, shape.trainSize);
    const rt = new JobRuntime(id, config, shape, opt, deps, null, 0);
    await rt.checkpoint();
    return rt;
  }

  /**
   * Builds the model once for its weight specs (trainable weights first, as tfjs orders them) and,
   * with no checkpoint, its freshly initialised weights; the server keeps only the flat vector.
   */
  private static async modelShape(config: JobConfig, weights: Uint8Array | null): Promise<{ params: Float32Array; allSpecs: TensorSpec[]; trainSpecs: TensorSpec[]; trainSize: number }> {
    const model = await buildModel(config.modelTopology);
    try {
      const allSpecs = weightSpecs(model);
      const trainSpecs = trainableSpecs(model);
      if (!sameSpecs(allSpecs.slice(0, trainSpecs.length), trainSpecs)) throw new Error('model weights do not list the trainable ones first');
      const total = allSpecs.reduce((n, t) => n + sizeOf(t.shape), 0);
      let params: Float32Array;
      if (weights) {
        if (weights.byteLength !== total * 4) throw new Error(`checkpoint has ${weights.byteLength} bytes of weights, the model needs ${total * 4}`);
        params = new Float32Array(total);
        params.set(new Float32Array(weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength)));
      } else {
        params = (await packWeights(model)).data.slice();
      }
      return { params, allSpecs, trainSpecs, trainSize: trainSpecs.reduce((n, t) => n + sizeOf(t.shape), 0) };
    } finally {
      model.dispose();
    }
  }

  /** Resumes from the newest valid checkpoint, or starts fresh when there is none. */
  static async open(id: string, config: JobConfig, deps: JobRuntimeDeps): Promise<JobRuntime> {
    const cp = await deps.store.loadLatest();
    if (!cp) return JobRuntime.create(id, config, deps);
    const shape = await JobRuntime.modelShape(config, cp.weights);
    const opt = createOptimizer(config.optimizer, shape.trainSize);
    const slotArrays = decodeTensors(cp.state.optimizer.specs, cp.optimizer);
    opt.restore({ step: cp.state.optimizer.step, slots: slotArrays.map((a) => ({ name: a.spec.name, data: a.data as Float32Array })) });
    const snap = cp.state.runtime as RuntimeSnapshot;
    const rt = new JobRuntime(id, config, shape, opt, deps, snap, cp.state.version);
    await rt.restoreBest();
    const replayed = rt.replay();
    const restored = rt.restoreLeases();
    deps.log.info(
      `job ${id}: resumed from checkpoint v${cp.state.version} + ${replayed} logged update(s) = v${rt.version} (${rt.status === 'running' || rt.status === 'paused' ? `epoch ${rt.humanEpoch()} of ${config.stop.maxEpochs}` : rt.status}); ${restored} lease(s) still outstanding`,
    );
    if (replayed > 0) await rt.checkpoint();
    // Crashed after the last shard but before "finished" was saved: finish now, don't idle forever.
    if (rt.status === 'running' && rt.leases.exhausted) void rt.evaluateNow();
    return rt;
  }

  /**
   * Re-applies the logged updates after the loaded checkpoint, in version order, with the learning
   * rate each was applied with. Throws if the log has a gap (the job must not silently lose work).
   */
  private replay(): number {
    let n = 0;
    for (const u of this.deps.state.updatesAfter(this.id, this.version)) {
      if (u.version !== this.version + 1 || !u.gradient) {
        throw new Error(`update log cannot be replayed from v${this.version}: next logged update is v${u.version}${u.gradient ? '' : ' without its gradient'}`);
      }
      this.optimizer.apply(this.trainParams, flatFloats(u.gradient), u.lr);
      this.version = u.version;
      this.leases.markDone(u.epoch, u.shard);
      this.counters.applied++;
      this.counters.samplesApplied += u.samples;
      this.counters.staleness[Math.min(STALENESS_BUCKETS - 1, u.staleness)]!++;
      if (u.loss !== null && Number.isFinite(u.loss)) this.trainLoss.push({ version: u.version, loss: u.loss });
      n++;
    }
    const stored = this.deps.state.metrics(this.id);
    if (stored.length >= this.metrics.length) {
      this.metrics = stored.map((m) => ({ version: m.version, testLoss: m.testLoss, testAccuracy: m.testAccuracy, testMae: m.testMae, testRmse: m.testRmse, at: m.at, ms: m.ms }));
      this.lastEvalVersion = this.metrics.at(-1)?.version ?? -1;
    }
    return n;
  }

  /** Leases outstanding at the crash keep their deadlines; the sweep reissues the expired ones. */
  private restoreLeases(): number {
    let n = 0;
    for (const l of this.deps.state.listLeases(this.id)) {
      const lease: Lease = { id: l.leaseId as Lease['id'], workerId: l.workerId as WorkerId, epoch: l.epoch, shard: l.shard, baseVersion: l.baseVersion, grantedAt: l.grantedAt, deadlineAt: l.deadlineAt };
      if (this.leases.restore(lease)) n++;
      else this.deps.state.deleteLease(this.id, l.leaseId);
    }
    return n;
  }

  get currentVersion(): number {
    return this.version;
  }

  descriptor(): JobDescriptor {
    return {
      id: this.id,
      name: this.config.name,
      description: this.config.description,
      modelTopology: this.config.modelTopology,
      task: this.config.task,
      loss: this.config.loss,
      fromLogits: this.config.fromLogits,
      batchSize: this.config.batchSize,
      data: this.deps.data.spec,
      trainableSpecs: this.trainSpecs,
    };
  }

  onUpdate(cb: (u: JobUpdate) => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  // ---- leases ---------------------------------------------------------------------------------

  requestLease(workerId: WorkerId, cachedVersion: number | null, codecs?: readonly Encoding[], rowCache?: RowCacheClaim): LeaseAck {
    const unavailable = this.unavailable();
    if (unavailable) return unavailable;
    if (this.finalizing) return fail(ErrorCode.Finalizing, 'evaluating the final model', 500);
    if (this.draining) return fail(ErrorCode.NoWork, 'the coordinator is restarting; ask again soon', 2000);
    if (!this.speeds.has(workerId)) {
      // After a restart, a returning worker's measured speed comes back from its durable record.
      const known = this.deps.state.getWorker(workerId)?.msPerSample;
      if (known != null) this.speeds.set(workerId, known);
    }
    const timeoutMs = leaseDeadlineMs(policyFor(this.config.leaseTimeoutMs), this.speeds.get(workerId), this.config.batchSize);
    const lease = this.leases.grant(workerId, this.version, timeoutMs);
    if (!lease) return fail(ErrorCode.NoWork, 'every shard is taken; ask again soon', 500);
    this.deps.state.putLease({ jobId: this.id, leaseId: lease.id, workerId, epoch: lease.epoch, shard: lease.shard, baseVersion: lease.baseVersion, grantedAt: lease.grantedAt, deadlineAt: lease.deadlineAt });
    const indices = this.sharder.indices(lease.epoch, lease.shard);
    const fresh = rowCache ? this.rowCaches.plan(lease.id, workerId, rowCache, indices) : null;
    const rows = this.deps.data.gather('train', fresh ? fresh.map((i) => indices[i]!) : indices);
    const wire = negotiate(this.config.compression, codecs);
    const weights = cachedVersion === this.version ? null : this.weightsFor(cachedVersion, wire.weights, codecs);
    this.counters.bytesDown += rows.x.byteLength + rows.y.byteLength + (weights?.data.byteLength ?? 0);
    return {
      ok: true,
      lease: {
        leaseId: lease.id,
        jobId: this.id,
        epoch: lease.epoch,
        shardIndex: lease.shard,
        baseVersion: lease.baseVersion,
        deadlineAt: lease.deadlineAt,
        numSamples: indices.length,
        x: rows.x,
        y: rows.y,
        ...(fresh ? { rowIds: Uint32Array.from(indices), fresh: Uint32Array.from(fresh) } : {}),
        ...(wire.gradients !== 'f32' ? { gradientEncoding: wire.gradients, topkRatio: wire.topkRatio } : {}),
      },
      weights,
    };
  }

  /** The newest weights for a worker holding `cachedVersion`: an int8 delta when smaller, else the whole in its encoding. */
  private weightsFor(cachedVersion: number | null, encoding: WeightEncoding, codecs: readonly Encoding[] | undefined): WeightsPayload {
    const full = this.snapshots.bytes(this.version, this.params, encoding);
    const delta = cachedVersion !== null && codecs?.includes('int8') ? this.snapshots.delta(cachedVersion, this.version, this.params, full.byteLength) : null;
    if (delta) return { version: this.version, specs: this.allSpecs, data: delta, encoding: 'int8', deltaFrom: cachedVersion! };
    return { version: this.version, specs: this.allSpecs, data: full, ...(encoding !== 'f32' ? { encoding } : {}) };
  }

  release(workerId: WorkerId, leaseId: string): boolean {
    const claim = this.leases.claim(leaseId, workerId);
    if (!claim.ok) return false;
    const released = this.leases.release(leaseId) !== null;
    this.rowCaches.forget(leaseId);
    if (released) this.deps.state.deleteLease(this.id, leaseId);
    return released;
  }

  workerLeft(workerId: WorkerId): number {
    this.workers.delete(workerId);
    const gone = this.leases.releaseWorker(workerId);
    for (const l of gone) this.deps.state.deleteLease(this.id, l.id);
    return gone.length;
  }

  /** Reclaims expired leases (each counts as a failure of its shard); the coordinator calls it periodically. */
  sweep(): number {
    const limit = this.config.stop.maxMinutes;
    if (limit != null && !this.timeUp && this.status === 'running' && this.elapsedActiveMs() >= limit * 60_000) {
      this.timeUp = true;
      this.deps.log.info(`job ${this.id}: wall-time limit of ${limit} min reached; evaluating the final model`);
      void this.evaluateNow();
    }
    const late = this.leases.sweep();
    for (const l of late) {
      this.deps.state.deleteLease(this.id, l.id);
      this.noteShardFailure(l);
    }
    return late.length;
  }

  private noteShardFailure(l: Lease): void {
    const r = this.leases.recordFailure(l);
    if (r.quarantined) this.deps.log.warn(`job ${this.id}: shard ${l.shard} of epoch ${l.epoch + 1} failed on too many workers and is set aside`);
    if (r.completed.length > 0) this.afterEpochs(r.completed);
  }

  private afterEpochs(completed: number[]): void {
    this.deps.log.info(`job ${this.id}: epoch ${completed.map((e) => e + 1).join(',')} of ${this.config.stop.maxEpochs} complete at v${this.version}`);
    void this.evaluateNow();
  }

  /** Graceful shutdown: stop granting leases, wait up to `ms` for the outstanding ones to come back. */
  async drain(ms: number): Promise<void> {
    this.draining = true;
    const until = this.deps.clock.now() + ms;
    while (this.leases.outstanding.length > 0 && this.deps.clock.now() < until) await this.deps.clock.sleep(50);
  }

  shardCounts(): { done: number; leased: number; waiting: number } {
    return this.leases.shardCounts();
  }

  /** Deadlines of the leases outstanding now (fault tests check none is overdue). */
  leaseDeadlines(): number[] {
    return this.leases.outstanding.map((l) => l.deadlineAt);
  }

  get outstandingLeases(): number {
    return this.leases.outstanding.length;
  }

  // ---- aggregation ----------------------------------------------------------------------------

  /** Validates and applies one gradient. Idempotent per lease: a retried push gets 'duplicate'. */
  push(workerId: WorkerId, msg: GradientPush): PushAck {
    const ack = this.applyPush(workerId, msg);
    this.recordWorkerOutcome(workerId, ack);
    return ack;
  }

  /** The worker's durable record: leases answered, accepted/refused, measured speed. */
  private recordWorkerOutcome(workerId: WorkerId, ack: PushAck): void {
    const prev = this.deps.state.getWorker(workerId);
    const now = this.deps.clock.now();
    this.deps.state.putWorker({
      workerId,
      firstSeenAt: prev?.firstSeenAt ?? now,
      lastSeenAt: now,
      capabilities: prev?.capabilities ?? null,
      leasesDone: (prev?.leasesDone ?? 0) + 1,
      accepted: (prev?.accepted ?? 0) + (ack.ok ? 1 : 0),
      refused: (prev?.refused ?? 0) + (ack.ok ? 0 : 1),
      msPerSample: this.speeds.get(workerId) ?? prev?.msPerSample ?? null,
    });
  }

  private applyPush(workerId: WorkerId, msg: GradientPush): PushAck {
    const prior = this.acks.get(msg.leaseId);
    if (prior) {
      if (prior.workerId !== workerId) return fail(ErrorCode.LeaseNotYours, 'lease belongs to another worker');
      return { ...prior.ack, status: 'duplicate' };
    }
    if (this.status === 'finished' || this.status === 'cancelled') return this.refuse(fail(ErrorCode.JobFinished, `job is ${this.status}`));
    const claim = this.leases.claim(msg.leaseId, workerId);
    if (!claim.ok) {
      // Applied before a restart? Answer as the first time (the ack may have been lost).
      const logged = claim.code === ErrorCode.UnknownLease ? this.deps.state.updateByLease(this.id, msg.leaseId) : null;
      if (logged && logged.workerId === workerId) {
        return { ok: true, status: 'duplicate', version: logged.version, staleness: logged.staleness, scale: logged.lr / this.config.optimizer.learningRate };
      }
      return this.refuse(fail(claim.code, claim.message));
    }
    const lease = claim.lease;
    // The push proves the worker received the lease's rows: they count as cached from now on.
    this.rowCaches.confirm(lease.id);
    if (this.finalizing) {
      this.leases.release(lease.id);
      return this.refuse(fail(ErrorCode.Finalizing, 'evaluating the final model; the shard will be reissued', 500));
    }
    if (msg.baseVersion !== lease.baseVersion) {
      return this.refuse(fail(ErrorCode.BadRequest, `lease was granted at v${lease.baseVersion}, push says v${msg.baseVersion}`));
    }
    const samples = this.sharder.indices(lease.epoch, lease.shard).length;
    if (msg.numSamples !== samples) {
      return this.refuse(fail(ErrorCode.BadRequest, `the shard has ${samples} examples, push says ${msg.numSamples}`));
    }
    const verdict = judgeStaleness(this.config.staleness, this.version, lease.baseVersion);
    if (!verdict.accept) {
      this.leases.release(lease.id);
      this.deps.state.deleteLease(this.id, lease.id);
      return this.refuse(fail(verdict.reason === 'stale' ? ErrorCode.Stale : ErrorCode.FutureVersion, `staleness ${verdict.tau} exceeds the bound ${this.config.staleness.maxStaleness}`));
    }
    const decoded = acceptGradient(this.trainSpecs, msg.specs, msg.data, msg.encoding, this.config.maxGradNorm);
    if (!decoded.ok) {
      this.leases.release(lease.id);
      this.deps.state.deleteLease(this.id, lease.id);
      this.noteShardFailure(lease);
      return this.refuse(fail(decoded.code, decoded.message));
    }

    const lr = this.config.optimizer.learningRate * verdict.scale;
    const now = this.deps.clock.now();
    // Durable first: the update is logged (and replayable) before it is applied and acknowledged.
    this.deps.state.appendUpdate({
      jobId: this.id, version: this.version + 1, leaseId: lease.id, workerId, epoch: lease.epoch, shard: lease.shard,
      baseVersion: lease.baseVersion, lr, staleness: verdict.tau, samples, loss: msg.loss !== null && Number.isFinite(msg.loss) ? msg.loss : null, at: now,
      gradient: decoded.bytes,
    });
    this.deps.state.deleteLease(this.id, lease.id);
    this.optimizer.apply(this.trainParams, decoded.floats, lr);
    this.version++;
    this.speeds.set(workerId, updateSpeed(this.speeds.get(workerId), now - lease.grantedAt, samples));
    const completedEpochs = this.leases.complete(lease);

    const ack = { ok: true as const, status: 'applied' as const, version: this.version, staleness: verdict.tau, scale: verdict.scale };
    this.acks.set(lease.id, { workerId, ack });
    if (this.acks.size > MAX_ACKS_KEPT) this.acks.delete(this.acks.keys().next().value!);
    this.counters.applied++;
    this.counters.samplesApplied += samples;
    this.counters.bytesUp += decoded.wireBytes;
    this.counters.staleness[Math.min(STALENESS_BUCKETS - 1, verdict.tau)]!++;
    if (msg.loss !== null && Number.isFinite(msg.loss)) {
      this.trainLoss.push({ version: this.version, loss: msg.loss });
      if (this.trainLoss.length > MAX_TRAIN_LOSS_KEPT) this.trainLoss.splice(0, this.trainLoss.length - MAX_TRAIN_LOSS_KEPT);
    }
    this.noteSamples(samples);

    if (completedEpochs.length > 0) this.afterEpochs(completedEpochs);
    else if ((this.version - this.lastEvalVersion >= this.config.evalEveryVersions && this.evalBudgetAllows()) || this.leases.exhausted) void this.evaluateNow();
    return ack;
  }

  /** The stop condition's metric targets (accuracy at or above; MAE/RMSE at or below). */
  private targetMet(r: EvalResult): boolean {
    const s = this.config.stop;
    if (s.targetAccuracy !== null && r.testAccuracy !== null && r.testAccuracy >= s.targetAccuracy) return true;
    if (s.targetMae != null && r.testMae !== null && r.testMae <= s.targetMae) return true;
    if (s.targetRmse != null && r.testRmse !== null && r.testRmse <= s.targetRmse) return true;
    return false;
  }

  /** ' at 0.9712 test accuracy' / ' at test MAE 0.41': the headline metric for log lines and messages. */
  private metricText(r: EvalResult | undefined): string {
    if (!r) return '';
    if (r.testAccuracy !== null) return ` at ${r.testAccuracy.toFixed(4)} test accuracy`;
    if (r.testMae !== null) return ` at test MAE ${r.testMae.toPrecision(4)}`;
    return ` at test loss ${r.testLoss.toPrecision(4)}`;
  }

  private recordMetric(r: EvalResult): void {
    this.metrics.push(r);
    this.deps.state.appendMetric({ jobId: this.id, ...r });
  }

  private refuse(f: Failure): Failure {
    this.counters.refused[f.code] = (this.counters.refused[f.code] ?? 0) + 1;
    return f;
  }

  private unavailable(): Failure | null {
    switch (this.status) {
      case 'paused':
        return fail(ErrorCode.JobPaused, 'paused by admin', 2000);
      case 'finished':
        return fail(ErrorCode.JobFinished, `finished${this.metricText(this.metrics.at(-1))}`);
      case 'cancelled':
        return fail(ErrorCode.JobFinished, 'cancelled by admin');
      case 'running':
        return null;
    }
  }

  /** All weights packed (cached per version). */
  private packedWeights(): Uint8Array {
    return this.snapshots.bytes(this.version, this.params, 'f32');
  }

  // ---- evaluation, stop condition, checkpoints --------------------------------------------------

  /** Evaluates the current version (one evaluation at a time), then checks the stop condition. */
  evaluateNow(): Promise<void> {
    if (this.evaluating) return this.evaluating;
    const version = this.version;
    this.lastEvalVersion = version;
    const packed = this.packedWeights();
    const weights = new Float32Array(packed.buffer, packed.byteOffset, packed.byteLength / 4);
    this.evaluating = (async () => {
      try {
        const r = await this.evaluator.evaluate(version, this.allSpecs, weights, () => this.deps.clock.now());
        this.lastEvalEndedAt = this.deps.clock.now();
        this.lastEvalMs = r.ms;
        this.recordMetric(r);
        this.considerBest(r, weights);
        if (this.status === 'running' && (this.targetMet(r) || this.timeUp || (this.leases.exhausted && this.version === version))) {
          if (this.version === version) {
            this.finish();
          } else {
            // Pushes landed while evaluating. Hold new work (a barrier) and evaluate the final
            // weights: "finished" must describe the model that is saved and served.
            this.finalizing = true;
            const finalPacked = this.packedWeights();
            const finalWeights = new Float32Array(finalPacked.buffer, finalPacked.byteOffset, finalPacked.byteLength / 4);
            const last = await this.evaluator.evaluate(this.version, this.allSpecs, finalWeights, () => this.deps.clock.now());
            this.recordMetric(last);
            this.considerBest(last, finalWeights);
            this.lastEvalVersion = this.version;
            this.finalizing = false;
            if (this.targetMet(last) || this.timeUp || this.leases.exhausted) this.finish();
          }
        }
        this.emit();
        await this.checkpoint();
      } catch (err) {
        this.deps.log.warn(`job ${this.id}: evaluation failed: ${(err as Error).message}`);
      } finally {
        this.evaluating = null;
        this.finalizing = false;
      }
      // Work that arrived while evaluating may already warrant another evaluation.
      if (this.status === 'running' && ((this.version - this.lastEvalVersion >= this.config.evalEveryVersions && this.evalBudgetAllows()) || (this.leases.exhausted && this.lastEvalVersion !== this.version))) {
        void this.evaluateNow();
      }
    })();
    return this.evaluating;
  }

  /** Writes a checkpoint of this instant (snapshot taken synchronously; writes serialized). */
  checkpoint(): Promise<void> {
    const version = this.version;
    const weights = this.packedWeights().slice();
    const opt: OptimizerState = this.optimizer.state();
    const optSpecs: TensorSpec[] = opt.slots.map((s) => ({ name: s.name, shape: [s.data.length], dtype: 'float32' }));
    const optimizer = new Uint8Array(encodeTensors(optSpecs, opt.slots.map((s) => s.data)));
    const runtime: RuntimeSnapshot = {
      status: this.status,
      ledger: this.leases.snapshot(),
      metrics: [...this.metrics],
      trainLoss: [...this.trainLoss],
      counters: structuredClone(this.counters),
      createdAt: this.createdAt,
      finishedAt: this.finishedAt,
      activeMs: this.elapsedActiveMs(),
    };
    const next = this.saving.then(async () => {
      await this.deps.store.save({
        modelTopology: this.config.modelTopology,
        weightSpecs: this.allSpecs,
        weights,
        optimizer,
        state: { version, createdAt: this.deps.clock.now(), runtime, optimizer: { step: opt.step, specs: optSpecs } },
      });
      this.lastCheckpointVersion = version;
      // Gradients stay in the log back to the oldest kept checkpoint, so falling back to any of
      // them (the newest may be corrupt) can still replay forward; older blobs are dropped.
      const kept = await this.deps.store.list();
      const oldest = kept.at(-1)?.version;
      if (oldest !== undefined) this.deps.state.compactUpdates(this.id, oldest);
    });
    this.saving = next.catch((err: Error) => this.deps.log.warn(`job ${this.id}: checkpoint v${version} failed: ${err.message}`));
    return this.saving;
  }

  /**
   * Keeps the evaluated weights when they are the best so far by the job's metric. Written in the
   * checkpoint queue (settle() waits for it); `best` in the summary changes once it is on disk.
   */
  private considerBest(r: EvalResult, weights: Float32Array): void {
    const store = this.deps.bestStore;
    const metric = bestMetricFor(this.config.loss);
    if (!store || !isBetter(metric, r, this.bestSeen)) return;
    const best: BestCheckpoint = { version: r.version, metric, testAccuracy: r.testAccuracy, testLoss: r.testLoss, at: r.at };
    this.bestSeen = best;
    const data = new Uint8Array(weights.buffer, weights.byteOffset, weights.byteLength).slice();
    const next = this.saving.then(async () => {
      await store.save({
        modelTopology: this.config.modelTopology,
        weightSpecs: this.allSpecs,
        weights: data,
        optimizer: new Uint8Array(0),
        state: { version: best.version, createdAt: this.deps.clock.now(), runtime: { best }, optimizer: { step: 0, specs: [] } },
      });
      this.bestSaved = best;
    });
    this.saving = next.catch((err: Error) => this.deps.log.warn(`job ${this.id}: best checkpoint v${best.version} failed: ${err.message}`));
  }

  private async restoreBest(): Promise<void> {
    const cp = await this.deps.bestStore?.loadLatest();
    const best = (cp?.state.runtime as { best?: BestCheckpoint } | undefined)?.best;
    if (best) this.bestSeen = this.bestSaved = best;
  }

  // ---- admin controls -------------------------------------------------------------------------

  pause(): void {
    if (this.status !== 'running') return;
    this.activeMs = this.elapsedActiveMs();
    this.activeSince = null;
    this.status = 'paused';
    this.emit();
    void this.checkpoint();
  }

  resume(): void {
    if (this.status !== 'paused') return;
    this.status = 'running';
    this.activeSince = this.deps.clock.now();
    this.emit();
    void this.checkpoint();
  }

  cancel(): void {
    if (this.status === 'finished' || this.status === 'cancelled') return;
    this.activeMs = this.elapsedActiveMs();
    this.activeSince = null;
    this.status = 'cancelled';
    this.finishedAt = this.deps.clock.now();
    this.emit();
    void this.checkpoint();
  }

  /**
   * Admin: the learning rate for updates from now on. The registry persists the job's config
   * (JobRegistry.updateSettings); each logged update records the lr it actually used.
   */
  setLearningRate(lr: number): void {
    if (!(Number.isFinite(lr) && lr > 0 && lr <= 10)) throw new RangeError(`learning rate must be in (0, 10], got ${lr}`);
    this.config.optimizer.learningRate = lr;
    this.emit();
  }

  /** Admin: the staleness bound for gradients judged from now on (persisted like the lr). */
  setMaxStaleness(bound: number): void {
    if (!(Number.isInteger(bound) && bound >= 0 && bound <= 100_000)) throw new RangeError(`staleness bound must be an integer in [0, 100000], got ${bound}`);
    this.config.staleness.maxStaleness = bound;
    this.emit();
  }

  /** Time spent running so far, pauses excluded (ms). */
  get activeElapsedMs(): number {
    return this.elapsedActiveMs();
  }

  private finish(): void {
    this.activeMs = this.elapsedActiveMs();
    this.activeSince = null;
    this.status = 'finished';
    this.finishedAt = this.deps.clock.now();
    this.deps.log.info(`job ${this.id}: finished at v${this.version}${this.metricText(this.metrics.at(-1))}${this.timeUp ? ' (wall-time limit reached)' : ''}`);
  }

  private elapsedActiveMs(): number {
    return this.activeMs + (this.activeSince === null ? 0 : this.deps.clock.now() - this.activeSince);
  }

  /** Waits for the evaluation and checkpoint writes in flight (shutdown, tests). */
  async settle(): Promise<void> {
    while (this.evaluating) await this.evaluating;
    await this.saving;
  }

  dispose(): void {
    this.evaluator.dispose();
    this.deps.data.close();
  }

  // ---- reporting ------------------------------------------------------------------------------

  private noteSamples(n: number): void {
    const now = this.deps.clock.now();
    this.recent.push({ at: now, samples: n });
    while (this.recent.length > 0 && this.recent[0]!.at < now - 10_000) this.recent.shift();
  }

  samplesPerSec(): number {
    const now = this.deps.clock.now();
    const recent = this.recent.filter((r) => r.at >= now - 10_000);
    if (recent.length < 2) return 0;
    const span = Math.max(1000, now - recent[0]!.at);
    return (recent.reduce((s, r) => s + r.samples, 0) * 1000) / span;
  }

  progress(): number {
    if (this.status === 'finished') return 1;
    const byEpochs = (this.leases.exhausted ? this.config.stop.maxEpochs : this.leases.currentEpoch + this.leases.epochFraction) / this.config.stop.maxEpochs;
    const target = this.config.stop.targetAccuracy;
    const acc = this.metrics.at(-1)?.testAccuracy ?? 0;
    const byAccuracy = target ? Math.min(1, acc / target) : 0;
    return Math.min(1, Math.max(byEpochs, byAccuracy));
  }

  metricHistory(): { evaluations: readonly EvalResult[]; trainLoss: readonly { version: number; loss: number }[] } {
    return { evaluations: this.metrics, trainLoss: this.trainLoss };
  }

  stalenessHistogram(): readonly number[] {
    return this.counters.staleness;
  }

  /**
   * The epoch in progress counted from 1, as logs and pages show it (the ledger counts from 0);
   * maxEpochs once every epoch is done. This is `epoch` in the API.
   */
  humanEpoch(): number {
    return this.leases.exhausted ? this.config.stop.maxEpochs : Math.min(this.leases.currentEpoch + 1, this.config.stop.maxEpochs);
  }

  summary(): JobSummary {
    const last = this.metrics.at(-1);
    // Every epoch done: the last epoch's shards are all done (the ledger has closed it).
    const shards = this.leases.exhausted ? { done: this.leases.shardsPerEpoch, leased: 0, waiting: 0 } : this.leases.shardCounts();
    return {
      id: this.id,
      name: this.config.name,
      description: this.config.description,
      status: this.status,
      batchSize: this.config.batchSize,
      version: this.version,
      epoch: this.humanEpoch(),
      maxEpochs: this.config.stop.maxEpochs,
      targetAccuracy: this.config.stop.targetAccuracy,
      progress: this.progress(),
      workers: this.workers.size,
      samplesPerSec: this.samplesPerSec(),
      task: this.config.task,
      metrics: { testAccuracy: last?.testAccuracy ?? null, testLoss: last?.testLoss ?? null, testMae: last?.testMae ?? null, testRmse: last?.testRmse ?? null },
      updates: { applied: this.counters.applied, refused: { ...this.counters.refused } },
      shards: { perEpoch: this.leases.shardsPerEpoch, ...shards, quarantined: [...this.leases.quarantined] },
      bytes: { down: this.counters.bytesDown, up: this.counters.bytesUp },
      samplesApplied: this.counters.samplesApplied,
      createdAt: this.createdAt,
      finishedAt: this.finishedAt,
      lastCheckpointVersion: this.lastCheckpointVersion,
      best: this.bestSaved,
    };
  }

  private emit(): void {
    const last = this.metrics.at(-1);
    const u: JobUpdate = {
      jobId: this.id,
      status: this.status,
      version: this.version,
      epoch: this.humanEpoch(),
      progress: this.progress(),
      testAccuracy: last?.testAccuracy ?? null,
      testLoss: last?.testLoss ?? null,
    };
    for (const l of this.listeners) l(u);
  }
}
