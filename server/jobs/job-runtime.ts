// One running job: wires its lease ledger, Aggregator (weights, optimizer, how gradients become
// steps), evaluation scheduler, checkpoint policy, lifecycle and figures (job-metrics.ts); owns only
// the wiring state (the acks of recent pushes, measured worker speeds, the finalize barrier).
//
// A gradient's walk, in push(): idempotency -> lease claim -> shape and staleness checks -> norm and
// finiteness check -> log record (durable first) -> Aggregator.admit (steps when its buffer is full)
// -> shard ledger -> counters -> maybe evaluate -> ack once the log is committed (group commit).
// pushCombined() walks the same way for a gateway's combined update (server/cluster/pre-aggregator.ts):
// all its leases claimed and logged in one turn, one contribution of weight n, every ack after the commit.
// After a crash the job reopens from the newest valid checkpoint, refills the buffer it held and
// replays the logged gradients after it, so every acknowledged gradient is in the model exactly once.
// A job that stops (target, time limit, last shard, cancel) flushes its buffer as one partial step.

import type { Clock } from '../../shared/clock.ts';
import { ErrorCode, fail, type Failure } from '../../shared/protocol/errors.ts';
import type { GradientPush, JobDescriptor, JobStatus, JobUpdate, LeaseAck, PushAck } from '../../shared/protocol/messages.ts';
import { decodeTensors, sameSpecs, sizeOf, toBytes, type TensorSpec } from '../../shared/codec/tensor-codec.ts';
import { buildModel, packWeights, trainableSpecs, weightSpecs } from '../../shared/training/model.ts';
import { LeaseManager, type LedgerSnapshot, type Lease, type WorkerId } from '../leases/lease-manager.ts';
import { Aggregator, type AggregatorSnapshot, type Contribution } from '../aggregation/aggregator.ts';
import { aggregationOf, describeAggregation, type AggregationConfig } from '../aggregation/aggregation-config.ts';
import { acceptGradient, WeightsSnapshots } from '../aggregation/wire.ts';
import { negotiate, tensorSizes, type Encoding, type WeightEncoding } from '../../shared/codec/compression.ts';
import { RowCacheBook } from '../data/row-cache-book.ts';
import type { RowCacheClaim, WeightsPayload } from '../../shared/protocol/messages.ts';
import { ThreadedEvaluator } from '../evaluation/threaded-evaluator.ts';
import { Evaluator, type EvalResult } from '../evaluation/evaluator.ts';
import { EvalScheduler } from '../evaluation/eval-scheduler.ts';
import type { JobData } from '../data/job-data.ts';
import { Sharder } from '../data/sharder.ts';
import type { Checkpoints } from '../storage/checkpoint-store.ts';
import { CheckpointPolicy } from '../storage/checkpoint-policy.ts';
import type { StateStore, UpdateRecord } from '../storage/state-store.ts';
import { leaseDeadlineMs, policyFor, updateSpeed } from '../leases/deadlines.ts';
import type { JobConfig } from './job-config.ts';
import { JobLifecycle, type LifecycleSnapshot } from './job-lifecycle.ts';
import { JobMetrics, type MetricsSnapshot } from './job-metrics.ts';
import type { BestCheckpoint } from '../storage/best-checkpoint.ts';

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
  readonly store: Checkpoints;
  readonly state: StateStore;
  readonly log: Logger;
  readonly newId: () => string;
  /** Where the best evaluated version's weights are kept (never pruned); none: not kept. */
  readonly bestStore?: Checkpoints | undefined;
  /** Distinct failing workers of a poison shard are counted by this (their address): server/security. */
  readonly failureIdentity?: ((workerId: WorkerId) => string) | undefined;
  /** Evaluate in a worker thread so pushes never wait for a test pass (server/evaluation/threaded-evaluator.ts). */
  readonly evaluationThread?: boolean | undefined;
}

export type { Counters } from './job-metrics.ts';

/** One lease answered inside a gateway's combined update, with what push() would have checked of it. */
export interface CombinedLease {
  readonly workerId: WorkerId;
  readonly leaseId: string;
  readonly baseVersion: number;
  readonly numSamples: number;
  readonly loss: number | null;
  /** The L2 norm of this lease's gradient, measured at the gateway (the owner checks the bound again). */
  readonly norm: number;
}

/** A gateway's combined update: leases granted at one version and the float32 sum of their gradients (trainable weights, packed). */
export interface CombinedPush {
  readonly baseVersion: number;
  readonly leases: readonly CombinedLease[];
  readonly sum: Uint8Array;
}

interface RuntimeSnapshot extends LifecycleSnapshot, MetricsSnapshot {
  ledger: LedgerSnapshot;
  /** Absent in checkpoints written before the Aggregator: log position = version, empty buffer. */
  aggregator?: AggregatorSnapshot;
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
  /** How gradients become steps: the job's `aggregation`, its one-line description, gradients waiting in the buffer. */
  aggregation: { mode: AggregationConfig['mode']; rule: AggregationConfig['rule']; bufferSize: number; localSteps: number | null; text: string; buffered: number };
}

const MAX_ACKS_KEPT = 20_000;

/** The bytes of a packed float32 gradient as one Float32Array (copied once if unaligned). */
function flatFloats(bytes: Uint8Array): Float32Array {
  const b = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
}

interface ModelShape {
  params: Float32Array;
  allSpecs: TensorSpec[];
  trainSpecs: TensorSpec[];
  trainSize: number;
}

export class JobRuntime {
  private readonly figures: JobMetrics;
  private readonly acks = new Map<string, { workerId: WorkerId; ack: Extract<PushAck, { ok: true }> }>();
  private readonly leases: LeaseManager;
  private readonly sharder: Sharder;
  /** Owns the weights (`params`, trainable prefix updated in place), the optimizer and the buffer. */
  private readonly aggregator: Aggregator;
  private readonly aggregation: AggregationConfig;
  /** All weights, flat, in allSpecs order (trainable first). Written only by the aggregator. */
  private readonly params: Float32Array;
  private readonly trainSpecs: TensorSpec[];
  private readonly allSpecs: TensorSpec[];
  private readonly evaluator: Evaluator | ThreadedEvaluator;
  /** One weights snapshot per version (and its encodings), shared by every lease, evaluation and checkpoint. */
  private readonly snapshots: WeightsSnapshots;
  /**
   * With `aggregation.lookahead`: what leases carry instead, one snapshot per version of the weights
   * predicted `stalenessAverage` steps ahead (`leaseParams` holds the prediction of `leaseVersion`).
   * Evaluations, checkpoints and exports read `snapshots` (the model itself).
   */
  private readonly leaseSnapshots: WeightsSnapshots | null;
  private leaseParams: Float32Array | null = null;
  private leaseVersion = -1;
  /** Which training rows each worker's row cache holds (only the others travel). */
  private readonly rowCaches: RowCacheBook;
  private readonly evals: EvalScheduler;
  private readonly checkpoints: CheckpointPolicy;
  private readonly lifecycle: JobLifecycle;
  /** The wall-time limit (stop.maxMinutes) was reached: the next evaluation finishes the job. */
  private timeUp = false;
  /** True while the final version is evaluated: no lease is granted and no push applied. */
  private finalizing = false;
  private evaluating: Promise<void> | null = null;
  /** dispose() ran: no more evaluations or checkpoints (the data and the evaluator are closed). */
  private disposed = false;
  private listeners = new Set<(u: JobUpdate) => void>();
  /** While draining (graceful shutdown) no lease is granted; pushes still land. */
  private draining = false;
  /** Measured ms per example per worker (EWMA), for adaptive lease deadlines. */
  private readonly speeds = new Map<WorkerId, number>();
  /** Workers working on this job right now (set by the transport). */
  readonly workers = new Set<WorkerId>();

  private constructor(
    readonly id: string,
    readonly config: JobConfig,
    shape: ModelShape,
    private readonly deps: JobRuntimeDeps,
    snapshot: RuntimeSnapshot | null,
    version: number,
  ) {
    this.aggregation = aggregationOf(config);
    this.sharder = new Sharder(deps.data.count('train'), this.shardSize, config.seed);
    this.leases = new LeaseManager(
      { shardsPerEpoch: this.sharder.shardsPerEpoch, maxEpochs: config.stop.maxEpochs, clock: deps.clock, newId: deps.newId, maxShardFailures: 8, minFailingWorkers: 3, identityOf: deps.failureIdentity },
      snapshot?.ledger,
    );
    this.trainSpecs = shape.trainSpecs;
    this.allSpecs = shape.allSpecs;
    this.params = shape.params;
    this.aggregator = new Aggregator(this.aggregation, config.optimizer, shape.params.subarray(0, shape.trainSize), version, snapshot?.aggregator?.seq ?? version);
    this.snapshots = new WeightsSnapshots(tensorSizes(shape.allSpecs));
    this.leaseSnapshots = this.aggregation.lookahead && this.aggregation.mode !== 'local' ? new WeightsSnapshots(tensorSizes(shape.allSpecs)) : null;
    this.rowCaches = new RowCacheBook(deps.data.count('train'));
    const stepSpec = { loss: config.loss, fromLogits: config.fromLogits, data: deps.data.spec };
    this.evaluator = deps.evaluationThread
      ? new ThreadedEvaluator(config.modelTopology, stepSpec, deps.data, (why) => deps.log.warn(`job ${id}: evaluating on the event loop (no worker thread: ${why})`))
      : new Evaluator(config.modelTopology, stepSpec, deps.data);
    this.lifecycle = new JobLifecycle(deps.clock, snapshot);
    this.evals = new EvalScheduler(deps.clock, () => this.config.evalEveryVersions, snapshot?.metrics.at(-1)?.version ?? -1);
    this.checkpoints = new CheckpointPolicy(
      { jobId: id, store: deps.store, bestStore: deps.bestStore, state: deps.state, now: () => deps.clock.now(), warn: (m) => deps.log.warn(m), modelTopology: config.modelTopology, allSpecs: shape.allSpecs, loss: config.loss },
      snapshot ? version : null,
    );
    this.figures = new JobMetrics(deps.clock, snapshot);
  }

  /** Examples per lease: one minibatch, or `localSteps` of them in `local` mode. */
  private get shardSize(): number {
    const a = aggregationOf(this.config);
    return a.mode === 'local' ? this.config.batchSize * a.localSteps : this.config.batchSize;
  }

  get status(): JobStatus {
    return this.lifecycle.status;
  }

  private get version(): number {
    return this.aggregator.version;
  }

  /** A new job with freshly initialised weights; checkpoint v0 is written before it returns. */
  static async create(id: string, config: JobConfig, deps: JobRuntimeDeps): Promise<JobRuntime> {
    const initial = deps.initialWeights ? new Uint8Array(deps.initialWeights.buffer, deps.initialWeights.byteOffset, deps.initialWeights.byteLength) : null;
    const shape = await JobRuntime.modelShape(config, initial);
    const rt = new JobRuntime(id, config, shape, deps, null, 0);
    await rt.checkpoint();
    return rt;
  }

  /**
   * Builds the model once for its weight specs (trainable weights first, as tfjs orders them) and,
   * with no checkpoint, its freshly initialised weights; the server keeps only the flat vector.
   */
  private static async modelShape(config: JobConfig, weights: Uint8Array | null): Promise<ModelShape> {
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

  /**
   * Resumes from the newest valid checkpoint, or starts fresh when the job has none and no log.
   * A job whose log has records but whose checkpoints are all gone refuses to start: starting over
   * would answer every retried push from the log while the weights forgot them.
   */
  static async open(id: string, config: JobConfig, deps: JobRuntimeDeps): Promise<JobRuntime> {
    const cp = await deps.store.loadLatest();
    if (!cp) {
      const logged = deps.state.lastVersion(id);
      if (logged !== null) {
        throw new Error(
          `its update log holds ${logged} gradient(s) but none of its checkpoints survives; refusing to start it from fresh weights. ` +
            `Restore its checkpoints (the job's checkpoints folder, or the shared store), or delete the job to start over`,
        );
      }
      return JobRuntime.create(id, config, deps);
    }
    const shape = await JobRuntime.modelShape(config, cp.weights);
    const snap = cp.state.runtime as RuntimeSnapshot;
    const rt = new JobRuntime(id, config, shape, deps, snap, cp.state.version);
    const slotArrays = decodeTensors(cp.state.optimizer.specs, cp.optimizer);
    rt.aggregator.restoreOptimizer({ step: cp.state.optimizer.step, slots: slotArrays.map((a) => ({ name: a.spec.name, data: a.data as Float32Array })) });
    if (snap.aggregator) rt.refillBuffer(snap.aggregator);
    await rt.checkpoints.restoreBest();
    const replayed = rt.replay();
    const restored = rt.restoreLeases();
    const where = rt.status === 'running' || rt.status === 'paused' ? `epoch ${rt.humanEpoch()} of ${config.stop.maxEpochs}` : rt.status;
    deps.log.info(`job ${id}: resumed from checkpoint v${cp.state.version} + ${replayed} logged update(s) = v${rt.version} (${where}); ${restored} lease(s) still outstanding`);
    if (replayed > 0) await rt.checkpoint();
    // Crashed after the last shard but before "finished" was saved: finish now, don't idle forever.
    if (rt.status === 'running' && rt.leases.exhausted) void rt.evaluateNow();
    return rt;
  }

  /**
   * The gradients the checkpoint's buffer held (logged, not yet in its weights): the log span it
   * names, less the records marked excluded (a quarantined worker's, dropped before or after it).
   */
  private refillBuffer(s: AggregatorSnapshot): void {
    this.aggregator.restoreSnapshot(s);
    if (s.buffered === 0) return;
    const span = this.deps.state.updatesAfter(this.id, s.seq - s.buffered).filter((u) => u.version <= s.seq);
    if (span.length !== s.buffered || span.some((u) => !u.gradient && u.excluded !== true && u.weight !== 0)) throw new Error(`the checkpoint's ${s.buffered} buffered gradient(s) up to #${s.seq} are not all in the log`);
    this.aggregator.refill(span.filter((u) => u.excluded !== true).map((u) => this.contribution(u)));
  }

  private contribution(u: UpdateRecord): Contribution {
    return {
      seq: u.version, gradient: u.gradient ? flatFloats(u.gradient) : new Float32Array(0), scale: u.scale ?? null, lr: u.lr, excluded: u.excluded === true, worker: u.workerId,
      ...(u.weight != null ? { weight: u.weight } : {}),
    };
  }

  /**
   * Re-admits the logged gradients after the checkpoint, in log order, each with the discount and
   * learning rate it was admitted with; checks each lands in the step it was logged for. Throws on
   * a gap (the job must not silently lose work).
   */
  private replay(): number {
    let n = 0;
    for (const u of this.deps.state.updatesAfter(this.id, this.aggregator.seq)) {
      // weight 0: a lease of a combined update whose sum the next record carries.
      if (u.version !== this.aggregator.seq + 1 || (!u.gradient && u.weight !== 0)) {
        throw new Error(`update log cannot be replayed from #${this.aggregator.seq}: next logged gradient is #${u.version}${u.gradient ? '' : ' without its gradient'}`);
      }
      this.leases.markDone(u.epoch, u.shard);
      // A gradient logged for a later step than the buffer's: the buffer was flushed before it
      // (the job stopped at a target it then missed after the flush), so flush it here too.
      if (u.step != null && u.step > this.aggregator.version + 1) this.aggregator.flush();
      const admitted = this.aggregator.admit(this.contribution(u), this.leases.exhausted);
      if (u.step != null && admitted.step !== u.step) throw new Error(`gradient #${u.version} was logged for v${u.step} but replays into v${admitted.step}`);
      this.figures.accepted(u.samples, u.staleness, null, u.loss, admitted.step);
      n++;
    }
    this.figures.adoptStored(this.deps.state.metrics(this.id).map((m) => ({ version: m.version, testLoss: m.testLoss, testAccuracy: m.testAccuracy, testMae: m.testMae, testRmse: m.testRmse, at: m.at, ms: m.ms })));
    this.evals.reset(this.figures.lastEvaluation?.version ?? -1);
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

  /** The next accepted push runs the robust combine (the worker-event queue gives it a turn of its own). */
  get nextPushIsHeavy(): boolean {
    return this.aggregator.nextAdmitCombines;
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
    // Disposed (shutdown, or this process handed the job to another owner): its data is closed.
    if (this.disposed) return fail(ErrorCode.NoWork, 'this job is closing here (a restart, or another coordinator process takes it over); ask again soon', 1000);
    if (!this.speeds.has(workerId)) {
      // After a restart, a returning worker's measured speed comes back from its durable record.
      const known = this.deps.state.getWorker(workerId)?.msPerSample;
      if (known != null) this.speeds.set(workerId, known);
    }
    const timeoutMs = leaseDeadlineMs(policyFor(this.config.leaseTimeoutMs), this.speeds.get(workerId), this.shardSize);
    const lease = this.leases.grant(workerId, this.version, timeoutMs);
    if (!lease) return fail(ErrorCode.NoWork, 'every shard is taken; ask again soon', 500);
    this.deps.state.putLease({ jobId: this.id, leaseId: lease.id, workerId, epoch: lease.epoch, shard: lease.shard, baseVersion: lease.baseVersion, grantedAt: lease.grantedAt, deadlineAt: lease.deadlineAt });
    const indices = this.sharder.indices(lease.epoch, lease.shard);
    const fresh = rowCache ? this.rowCaches.plan(lease.id, workerId, rowCache, indices) : null;
    const wire = negotiate(this.config.compression, codecs);
    let rows: { x: Uint8Array; y: Uint8Array };
    let weights: WeightsPayload | null;
    try {
      rows = this.deps.data.gather('train', fresh ? fresh.map((i) => indices[i]!) : indices);
      weights = cachedVersion === this.version ? null : this.weightsFor(cachedVersion, wire.weights, codecs);
    } catch (err) {
      // Granted but not sent: give the shard back now rather than at its deadline.
      try {
        this.release(workerId, lease.id);
      } catch {
        /* its deadline gives it back */
      }
      throw err;
    }
    this.figures.downloaded(rows.x.byteLength + rows.y.byteLength + (weights?.data.byteLength ?? 0));
    const a = this.aggregation;
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
        ...(a.mode === 'local' ? { local: { steps: a.localSteps, batchSize: this.config.batchSize, optimizer: { ...this.config.optimizer } } } : {}),
        ...(fresh ? { rowIds: Uint32Array.from(indices), fresh: Uint32Array.from(fresh) } : {}),
        ...(wire.gradients !== 'f32' ? { gradientEncoding: wire.gradients, topkRatio: wire.topkRatio } : {}),
      },
      weights,
    };
  }

  /** Every row of a shard, in lease order (a spot check's replica of a lease whose rows partly came from a cache). */
  shardRows(epoch: number, shard: number): { x: Uint8Array; y: Uint8Array } | null {
    if (this.disposed) return null;
    return this.deps.data.gather('train', this.sharder.indices(epoch, shard));
  }

  /** A lease's rows travelled compressed (server/transport/row-compression.ts): `saved` fewer bytes down. */
  rowsCompressed(saved: number): void {
    this.figures.downloaded(-saved);
  }

  /** The newest weights for a worker holding `cachedVersion`: an int8 delta when smaller, else the whole in its encoding. */
  private weightsFor(cachedVersion: number | null, encoding: WeightEncoding, codecs: readonly Encoding[] | undefined): WeightsPayload {
    const { snapshots, params } = this.leaseWeights();
    const full = snapshots.bytes(this.version, params, encoding);
    const delta = cachedVersion !== null && codecs?.includes('int8') ? snapshots.delta(cachedVersion, this.version, params, full.byteLength) : null;
    if (delta) return { version: this.version, specs: this.allSpecs, data: delta, encoding: 'int8', deltaFrom: cachedVersion! };
    return { version: this.version, specs: this.allSpecs, data: full, ...(encoding !== 'f32' ? { encoding } : {}) };
  }

  /**
   * The weights leases carry at this version: the model's own, or with `lookahead` its prediction
   * s steps ahead (s = the average staleness when the version's first lease is made; it is
   * checkpointed and replayed, so after a restart it resumes where the log left it). Made once per
   * version. Spot-check replicas are sent the weights their checked lease carried
   * (validation/spot-checker.ts), never a fresh prediction.
   */
  private leaseWeights(): { snapshots: WeightsSnapshots; params: Float32Array } {
    if (!this.leaseSnapshots) return { snapshots: this.snapshots, params: this.params };
    if (this.leaseVersion !== this.version || !this.leaseParams) {
      this.leaseParams ??= new Float32Array(this.params.length);
      this.leaseParams.set(this.params);
      const steps = this.figures.counters.stalenessAverage ?? 0;
      this.aggregator.predictWeights(this.leaseParams.subarray(0, this.aggregator.trainSize), steps, this.config.optimizer.learningRate);
      this.leaseVersion = this.version;
    }
    return { snapshots: this.leaseSnapshots, params: this.leaseParams };
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
    if (limit != null && !this.timeUp && this.status === 'running' && this.lifecycle.elapsedActiveMs() >= limit * 60_000) {
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

  /** Leases this worker holds now (the door allows one plus one prefetched). */
  leasesHeldBy(workerId: WorkerId): number {
    return this.leases.outstanding.reduce((n, l) => n + (l.workerId === workerId ? 1 : 0), 0);
  }

  // ---- the push pipeline ----------------------------------------------------------------------

  /**
   * Validates, logs and admits one gradient; answers once its log record (and the worker's record,
   * same transaction) is committed. Idempotent per lease: a retried push gets 'duplicate'.
   */
  async push(workerId: WorkerId, msg: GradientPush): Promise<PushAck> {
    const ack = this.accept(workerId, msg);
    this.recordWorkerOutcome(workerId, ack);
    await this.deps.state.durable();
    return ack;
  }

  private accept(workerId: WorkerId, msg: GradientPush): PushAck {
    const prior = this.acks.get(msg.leaseId);
    if (prior) {
      if (prior.workerId !== workerId) return fail(ErrorCode.LeaseNotYours, 'lease belongs to another worker');
      return { ...prior.ack, status: 'duplicate' };
    }
    if (this.lifecycle.ended) return this.refuse(fail(ErrorCode.JobFinished, `job is ${this.status}`));
    const claim = this.leases.claim(msg.leaseId, workerId);
    if (!claim.ok) {
      // Accepted before a restart? Answer as the first time (the ack may have been lost).
      const logged = claim.code === ErrorCode.UnknownLease ? this.deps.state.updateByLease(this.id, msg.leaseId) : null;
      if (logged && logged.workerId === workerId) {
        return { ok: true, status: 'duplicate', version: logged.step ?? logged.version, staleness: logged.staleness, scale: logged.scale ?? logged.lr / this.config.optimizer.learningRate };
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
    const verdict = this.aggregator.judge(this.config.staleness, lease.baseVersion);
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

    // Durable first: the record (which step it joins, its discount, the step's lr) is logged before
    // the aggregator admits it; the ack waits for the commit.
    const seq = this.aggregator.seq + 1;
    // Whether it completes the buffer or waits in it, this gradient is part of the next version.
    const step = this.version + 1;
    const lr = this.aggregator.stepLearningRate(this.config.optimizer.learningRate);
    const now = this.deps.clock.now();
    const loss = msg.loss !== null && Number.isFinite(msg.loss) ? msg.loss : null;
    const gradient = decoded.bytes;
    this.deps.state.appendUpdate({
      jobId: this.id, version: seq, step, scale: verdict.scale, leaseId: lease.id, workerId, epoch: lease.epoch, shard: lease.shard,
      baseVersion: lease.baseVersion, lr, staleness: verdict.tau, samples, loss, at: now, gradient,
    });
    this.deps.state.deleteLease(this.id, lease.id);
    const completedEpochs = this.leases.complete(lease);
    // The last shard of the last epoch flushes a partial buffer: every gradient ends up in the model.
    const admitted = this.aggregator.admit({ seq, gradient: decoded.floats, scale: verdict.scale, lr, worker: workerId }, this.leases.exhausted);
    this.speeds.set(workerId, updateSpeed(this.speeds.get(workerId), now - lease.grantedAt, samples));

    const ack = { ok: true as const, status: admitted.stepped ? ('applied' as const) : ('buffered' as const), version: admitted.step, staleness: verdict.tau, scale: verdict.scale };
    this.acks.set(lease.id, { workerId, ack });
    if (this.acks.size > MAX_ACKS_KEPT) this.acks.delete(this.acks.keys().next().value!);
    this.figures.accepted(samples, verdict.tau, decoded.wireBytes, loss, admitted.step);
    this.figures.noteSamples(samples);

    if (completedEpochs.length > 0) this.afterEpochs(completedEpochs);
    else if (this.evals.periodicDue(this.version) || this.leases.exhausted) void this.evaluateNow();
    return ack;
  }


  /**
   * A worker found wrong (quarantined by spot checks): its gradients still waiting in the buffer are
   * dropped before the step that would combine them. The records are marked excluded in the same
   * turn, so they share a commit with (or precede) every later record and checkpoint: replay and a
   * refilled buffer leave them out too, and the weights replay bit for bit. Their shards stay done
   * for their epoch. Async jobs have nothing waiting (each gradient is its own step, already in the
   * weights); what is in the weights is not undone. Returns how many were dropped.
   */
  excludeWorker(workerId: WorkerId): number {
    const waiting = this.aggregator.bufferedSeqs();
    if (waiting.length === 0) return 0;
    const theirs = this.deps.state
      .updatesAfter(this.id, waiting[0]! - 1)
      // A combined update's sum mixes several workers' gradients: it cannot be taken apart, and stays.
      .filter((u) => u.workerId === workerId && waiting.includes(u.version) && (u.weight ?? 1) === 1)
      .map((u) => u.version);
    if (theirs.length === 0) return 0;
    // The mark first: if the store refuses it (a deposed owner), the buffer is left as it was.
    this.deps.state.excludeUpdates(this.id, theirs);
    const dropped = this.aggregator.exclude(new Set(theirs));
    this.deps.log.warn(`job ${this.id}: dropped ${dropped.length} buffered gradient(s) of quarantined worker ${workerId} before step v${this.version + 1} (log #${dropped.join(', #')})`);
    return dropped.length;
  }

  /**
   * A gateway's combined update (server/cluster/pre-aggregator.ts): the float32 sum of gradients the
   * gateway validated as push() would (specs, finite, norm bound), for leases all granted at one
   * version. Either every lease is accepted and logged in this turn (one record per lease, the last
   * carrying the sum and weight n, see UpdateRecord.weight), admitted as one contribution of weight
   * n, and each gets the ack push() would have given (after the commit); or nothing changes and the
   * answer names the leases to push individually, where push() judges each (a duplicate, a lease
   * that is not the worker's, stale, ...) and the rest may be combined again. A job whose rule needs
   * individual gradients (robust rules, async, local) takes none combined.
   */
  async pushCombined(c: CombinedPush): Promise<{ ok: true; acks: PushAck[] } | { ok: false; individually: string[] }> {
    const all = { ok: false as const, individually: c.leases.map((l) => l.leaseId) };
    const a = this.aggregation;
    if (a.mode !== 'buffered' || a.rule !== 'mean' || this.lifecycle.ended || this.finalizing || c.leases.length === 0) return all;
    if (c.sum.byteLength !== this.aggregator.trainSize * 4) return all;
    const verdict = this.aggregator.judge(this.config.staleness, c.baseVersion);
    if (!verdict.accept) return all;
    const floats = flatFloats(c.sum);
    for (let i = 0; i < floats.length; i++) if (!Number.isFinite(floats[i]!)) return all;
    const individually: string[] = [];
    const taken: { l: CombinedLease; lease: Lease }[] = [];
    const seen = new Set<string>();
    // claim() changes nothing, so an expired lease and its reissue (one shard) could both pass it
    // within one sum: the second would train the shard twice where push() says SHARD_ALREADY_DONE.
    const shards = new Set<string>();
    for (const l of c.leases) {
      const claim = this.acks.has(l.leaseId) || seen.has(l.leaseId) ? null : this.leases.claim(l.leaseId, l.workerId);
      seen.add(l.leaseId);
      const shard = claim?.ok === true ? `${claim.lease.epoch}:${claim.lease.shard}` : null;
      const again = shard !== null && shards.has(shard);
      if (shard !== null) shards.add(shard);
      const ok = claim?.ok === true && !again && claim.lease.baseVersion === c.baseVersion && l.baseVersion === c.baseVersion && this.sharder.indices(claim.lease.epoch, claim.lease.shard).length === l.numSamples && Number.isFinite(l.norm) && l.norm <= this.config.maxGradNorm;
      if (ok) taken.push({ l, lease: claim.lease });
      else individually.push(l.leaseId);
    }
    if (individually.length > 0) return { ok: false, individually };

    const n = taken.length;
    const lr = this.aggregator.stepLearningRate(this.config.optimizer.learningRate);
    const step = this.version + 1;
    const now = this.deps.clock.now();
    const completed: number[] = [];
    const acks: PushAck[] = [];
    let admitted = { step, stepped: false };
    // All n records in one store write: in Redis a fence landing between separate appends would leave
    // weight-0 records (shards marked done, leases answered `duplicate`) whose sum was never logged.
    const firstSeq = this.aggregator.seq + 1;
    this.deps.state.appendUpdates(
      taken.map(({ l, lease }, i) => ({
        jobId: this.id, version: firstSeq + i, step, scale: verdict.scale, weight: i === n - 1 ? n : 0, leaseId: lease.id, workerId: l.workerId, epoch: lease.epoch, shard: lease.shard,
        baseVersion: lease.baseVersion, lr, staleness: verdict.tau, samples: l.numSamples, loss: l.loss !== null && Number.isFinite(l.loss) ? l.loss : null, at: now, gradient: i === n - 1 ? c.sum : null,
      })),
    );
    taken.forEach(({ l, lease }, i) => {
      const last = i === n - 1;
      const seq = this.aggregator.seq + 1;
      const samples = l.numSamples;
      const loss = l.loss !== null && Number.isFinite(l.loss) ? l.loss : null;
      this.rowCaches.confirm(lease.id);
      this.deps.state.deleteLease(this.id, lease.id);
      completed.push(...this.leases.complete(lease));
      admitted = this.aggregator.admit({ seq, gradient: last ? floats : new Float32Array(0), scale: verdict.scale, lr, worker: l.workerId, weight: last ? n : 0 }, this.leases.exhausted);
      this.speeds.set(l.workerId, updateSpeed(this.speeds.get(l.workerId), now - lease.grantedAt, samples));
      this.figures.accepted(samples, verdict.tau, last ? c.sum.byteLength : 0, loss, step);
      this.figures.noteSamples(samples);
    });
    for (const { l, lease } of taken) {
      const ack = { ok: true as const, status: admitted.stepped ? ('applied' as const) : ('buffered' as const), version: admitted.step, staleness: verdict.tau, scale: verdict.scale };
      this.acks.set(lease.id, { workerId: l.workerId, ack });
      if (this.acks.size > MAX_ACKS_KEPT) this.acks.delete(this.acks.keys().next().value!);
      this.recordWorkerOutcome(l.workerId, ack);
      acks.push(ack);
    }
    if (completed.length > 0) this.afterEpochs(completed);
    else if (this.evals.periodicDue(this.version) || this.leases.exhausted) void this.evaluateNow();
    await this.deps.state.durable();
    return { ok: true, acks };
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
    this.figures.evaluated(r);
    this.deps.state.appendMetric({ jobId: this.id, ...r });
  }

  private refuse(f: Failure): Failure {
    this.figures.refused(f.code);
    return f;
  }

  private unavailable(): Failure | null {
    switch (this.status) {
      case 'paused':
        return fail(ErrorCode.JobPaused, 'paused by admin', 2000);
      case 'finished':
        return fail(ErrorCode.JobFinished, `finished${this.metricText(this.figures.lastEvaluation)}`);
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
    if (this.disposed) return Promise.resolve();
    if (this.evaluating) return this.evaluating;
    const version = this.version;
    this.evals.started(version);
    const packed = this.packedWeights();
    const weights = new Float32Array(packed.buffer, packed.byteOffset, packed.byteLength / 4);
    this.evaluating = (async () => {
      try {
        const r = await this.evaluator.evaluate(version, this.allSpecs, weights, () => this.deps.clock.now());
        if (this.disposed) return;
        this.evals.finished(r.ms);
        this.recordMetric(r);
        this.checkpoints.considerBest(r, weights);
        if (this.status === 'running' && (this.targetMet(r) || this.timeUp || (this.leases.exhausted && this.version === version))) {
          // Stopping: the gradients waiting in the buffer are acknowledged, so they go into the
          // final weights as one partial step (which also makes the version differ: evaluated below).
          this.flushBuffer(this.targetMet(r) ? 'target reached' : this.timeUp ? 'wall-time limit reached' : 'every shard done');
          if (this.version === version) {
            this.finish();
          } else {
            // Pushes landed while evaluating, or the buffer was flushed. Hold new work (a barrier) and
            // evaluate the final weights: "finished" must describe the model that is saved and served.
            // Should they miss the target after all, the job runs on from the flushed version (the
            // next logged gradient names a later step, which is how replay knows of the flush).
            this.finalizing = true;
            const finalPacked = this.packedWeights();
            const finalWeights = new Float32Array(finalPacked.buffer, finalPacked.byteOffset, finalPacked.byteLength / 4);
            const last = await this.evaluator.evaluate(this.version, this.allSpecs, finalWeights, () => this.deps.clock.now());
            if (this.disposed) return;
            this.recordMetric(last);
            this.checkpoints.considerBest(last, finalWeights);
            this.evals.started(this.version);
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
      if (this.status === 'running' && this.evals.dueAfter(this.version, this.leases.exhausted)) void this.evaluateNow();
    })();
    return this.evaluating;
  }

  /** Writes a checkpoint of this instant (snapshot taken synchronously; writes serialized). */
  checkpoint(): Promise<void> {
    // Disposed (a cluster owner that stepped down): its successor writes this job now.
    if (this.disposed) return Promise.resolve();
    const runtime: RuntimeSnapshot = {
      ...this.lifecycle.snapshot(),
      ...this.figures.snapshot(),
      ledger: this.leases.snapshot(),
      aggregator: this.aggregator.snapshot(),
    };
    return this.checkpoints.write({ version: this.version, weights: this.packedWeights().slice(), optimizer: this.aggregator.optimizerState(), runtime: runtime as unknown as RuntimeSnapshot & Record<string, unknown> });
  }

  // ---- admin controls: each is durable (checkpoint written) before it resolves ----------------------

  async pause(): Promise<void> {
    if (!this.lifecycle.pause()) return;
    this.emit();
    await this.checkpoint();
  }

  async resume(): Promise<void> {
    if (!this.lifecycle.resume()) return;
    this.emit();
    await this.checkpoint();
  }

  /**
   * Cancel keeps what was acknowledged: the buffer is flushed into the weights (the model stays
   * downloadable) in the same synchronous turn as the status change, so the checkpoint holds both.
   * No final evaluation is run.
   */
  async cancel(): Promise<void> {
    if (this.lifecycle.ended) return;
    this.flushBuffer('cancelled');
    this.lifecycle.cancel();
    this.emit();
    await this.checkpoint();
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
    return this.lifecycle.elapsedActiveMs();
  }

  /**
   * The job stops: the buffered gradients become one partial step. Durable with the checkpoint that
   * records the end (taken in the same turn or, for a target, after the final evaluation); a crash
   * before it reopens the job running with the same buffer, to stop (and flush) again.
   */
  private flushBuffer(why: string): void {
    const n = this.aggregator.buffered;
    if (this.aggregator.flush()) this.deps.log.info(`job ${this.id}: ${why}; the ${n} buffered gradient(s) make a partial step, v${this.version}`);
  }

  private finish(): void {
    this.lifecycle.finish();
    this.deps.log.info(`job ${this.id}: finished at v${this.version}${this.metricText(this.figures.lastEvaluation)}${this.timeUp ? ' (wall-time limit reached)' : ''}`);
  }

  /** Waits for the evaluation and checkpoint writes in flight (shutdown, tests). */
  async settle(): Promise<void> {
    while (this.evaluating) await this.evaluating;
    await this.checkpoints.settle();
  }

  dispose(): void {
    this.disposed = true;
    this.checkpoints.stop();
    this.evaluator.dispose();
    this.deps.data.close();
  }

  // ---- reporting ------------------------------------------------------------------------------

  samplesPerSec(): number {
    return this.figures.samplesPerSec();
  }

  progress(): number {
    if (this.status === 'finished') return 1;
    const byEpochs = (this.leases.exhausted ? this.config.stop.maxEpochs : this.leases.currentEpoch + this.leases.epochFraction) / this.config.stop.maxEpochs;
    const target = this.config.stop.targetAccuracy;
    const acc = this.figures.lastEvaluation?.testAccuracy ?? 0;
    const byAccuracy = target ? Math.min(1, acc / target) : 0;
    return Math.min(1, Math.max(byEpochs, byAccuracy));
  }

  metricHistory(): { evaluations: readonly EvalResult[]; trainLoss: readonly { version: number; loss: number }[] } {
    return this.figures.history();
  }

  stalenessHistogram(): readonly number[] {
    return this.figures.counters.staleness;
  }

  /**
   * The epoch in progress counted from 1, as logs and pages show it (the ledger counts from 0);
   * maxEpochs once every epoch is done. This is `epoch` in the API.
   */
  humanEpoch(): number {
    return this.leases.exhausted ? this.config.stop.maxEpochs : Math.min(this.leases.currentEpoch + 1, this.config.stop.maxEpochs);
  }

  summary(): JobSummary {
    const last = this.figures.lastEvaluation;
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
      updates: { applied: this.figures.counters.applied, refused: { ...this.figures.counters.refused } },
      shards: { perEpoch: this.leases.shardsPerEpoch, ...shards, quarantined: [...this.leases.quarantined] },
      bytes: { down: this.figures.counters.bytesDown, up: this.figures.counters.bytesUp },
      samplesApplied: this.figures.counters.samplesApplied,
      createdAt: this.lifecycle.createdAt,
      finishedAt: this.lifecycle.finishedAt,
      lastCheckpointVersion: this.checkpoints.lastVersion,
      best: this.checkpoints.bestSaved,
      aggregation: {
        mode: this.aggregation.mode,
        rule: this.aggregation.rule,
        bufferSize: this.aggregator.bufferSize,
        localSteps: this.aggregation.mode === 'local' ? this.aggregation.localSteps : null,
        text: describeAggregation(this.aggregation),
        buffered: this.aggregator.buffered,
      },
    };
  }

  private emit(): void {
    const last = this.figures.lastEvaluation;
    const u: JobUpdate = {
      jobId: this.id,
      status: this.status,
      version: this.version,
      epoch: this.humanEpoch(),
      progress: this.progress(),
      testAccuracy: last?.testAccuracy ?? null,
      testLoss: last?.testLoss ?? null,
      testMae: last?.testMae ?? null,
    };
    for (const l of this.listeners) l(u);
  }
}
