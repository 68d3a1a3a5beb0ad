// The volunteer's training loop, isomorphic: the same code runs in a browser Web Worker and in Node
// (integration tests, benchmarks, Node contributors). It owns the worker-side state: the job, the
// model and its cached weight version, the lease in hand, pause/stop and the usage cap.
// A loop given no job id follows the coordinator's scheduler: it moves to another job when told
// (JOB_REASSIGNED) or when its job finishes, pauses or cannot run on this device, if another job is
// there; a loop given a job id stays on it (finished -> ends, paused -> waits).

import type { Clock } from '../clock.ts';
import { ErrorCode, TRANSIENT_CODES } from '../protocol/errors.ts';
import {
  PROTOCOL_VERSION,
  type JobDescriptor,
  type JobUpdate,
  type GradientPush,
  type LeaseAck,
  type LeasePayload,
  type LeaseRequest,
  type PushAck,
  type BackendName,
  type WorkerCapabilities,
} from '../protocol/messages.ts';
import { toBytes } from '../codec/tensor-codec.ts';
import { ENCODINGS, ErrorFeedback, decodeVector, tensorSizes, type Encoding } from '../codec/compression.ts';
import { buildModel, setWeightsFromPacked, trainableSpecs } from './model.ts';
import { computeGradients } from './gradient-step.ts';
import { computeLocalUpdate } from './local-steps.ts';
import type { CoordinatorLink } from './link.ts';
import { RowCache } from './row-cache.ts';
import { featureRowBytes, targetRowBytes } from '../data/data-spec.ts';
import { availableRowCodecs, inflateRows, type RowCodec } from '../codec/rows-codec.ts';
import type { tf } from './tf.ts';

export type WorkerState =
  | 'connecting'
  | 'downloading'
  | 'computing'
  | 'uploading'
  | 'waiting'
  | 'probing'
  | 'paused'
  | 'paused-by-admin'
  | 'finished'
  | 'stopped'
  | 'unsupported'
  | 'retrying';

export interface WorkerStats {
  shardsDone: number;
  samplesDone: number;
  accepted: number;
  refused: number;
  refusedByCode: Record<string, number>;
  computeMs: number;
  bytesDown: number;
  bytesUp: number;
  /** Samples/s over the last few leases (compute + transfer + waits). */
  samplesPerSec: number;
  lastLoss: number | null;
  lastStaleness: number | null;
  /** Prefetched `local` leases handed back because a step landed while they waited (asked for again). */
  prefetchesDropped: number;
}

export interface LoopListener {
  state?(state: WorkerState, detail?: string): void;
  job?(job: JobDescriptor): void;
  jobUpdate?(u: JobUpdate): void;
  stats?(s: Readonly<WorkerStats>): void;
}

/**
 * What a worker makes of a job before training it: ready (with capabilities to announce again,
 * e.g. the backend it measured fastest and the probe figures) or unable to train it at all.
 */
export type JobPreparation =
  | { readonly ok: true; readonly capabilities?: WorkerCapabilities | undefined }
  | { readonly ok: false; readonly reason: string };

/** A backend that passed its probe but then could not train the job (see NON_FINITE_LIMIT). */
export interface BackendFailure {
  readonly backend: BackendName;
  readonly error: string;
}

/**
 * Non-finite gradients from this many shards in a row: the backend in use cannot train this model
 * (a GPU or driver returning garbage, a model that overflows on it). A backend whose probe timed
 * out was kept unverified, so this is where such a backend is caught. One or two in a row may be
 * the data's: they are pushed (as float32, outside any error feedback), the coordinator refuses
 * them and counts the shard's failures as usual.
 */
export const NON_FINITE_LIMIT = 3;

/**
 * The row cache's memory bound. The coordinator is promised half of it in rows (row-cache.ts), so
 * 64 MiB promised 42,700 MNIST rows of 60,000, and about 30% of every epoch came down again.
 */
export const DEFAULT_ROW_CACHE_BYTES = 128 * 1024 * 1024;

export interface LoopOptions {
  readonly capabilities: WorkerCapabilities;
  /**
   * Runs once per job, after job:get and before the model is built: the tab probes its backends
   * on the job's model here. A refusal is sent as job:refuse and ends the loop ('unsupported').
   * Runs again, with `failed` naming the backends that could not train the job after all, when
   * the backend in use gives non-finite gradients NON_FINITE_LIMIT times in a row; without
   * prepareJob (one backend, a Node contributor) the job is then refused.
   */
  readonly prepareJob?: ((job: JobDescriptor, failed: readonly BackendFailure[]) => Promise<JobPreparation>) | undefined;
  readonly clock: Clock;
  /** Stable id for this worker (default: random per loop). */
  readonly workerId?: string | undefined;
  /** The credential the coordinator issued with workerId (kept by the tab with its id). */
  readonly credential?: string | undefined;
  /** Told the id and credential the coordinator issued, to keep for the next session. */
  readonly onIdentity?: ((workerId: string, credential: string) => void) | undefined;
  /** Pin the loop to this job; without it the coordinator chooses, and may move the loop between jobs. */
  readonly jobId?: string | undefined;
  readonly listener?: LoopListener | undefined;
  /** Fraction of wall time spent computing, (0, 1]. 1 = no cap. */
  readonly dutyCycle?: number | undefined;
  /** Stop after this many leases (tests, benchmarks). */
  readonly maxLeases?: number | undefined;
  /** Backoff bounds for transport failures. */
  readonly minBackoffMs?: number | undefined;
  readonly maxBackoffMs?: number | undefined;
  /**
   * Ask for the next lease while computing the current one, hiding the round trip and the
   * coordinator's work behind compute. With one gradient per lease it costs about one version of
   * staleness per worker (MNIST MLP: +29% samples/s, no sooner at 97%). With `local` leases a push
   * waits for its ack, and a prefetched lease granted before a step that has landed since is
   * handed back and asked for again (dropIfBehind): a pseudo-gradient from weights a step behind
   * counts that step's progress twice (two tabs stalled at 0.89-0.92 before this), so prefetch
   * adds no staleness there and only hides the round trips between steps. Absent: off; `?prefetch=1`
   * on the page turns it on. Never on under a usage cap.
   */
  readonly prefetch?: boolean | undefined;
  /**
   * Pipelined: a gradient is pushed without waiting for its ack (acks are matched by lease id when
   * they come; at most `maxInFlight` unanswered), and the next lease is asked for right behind the
   * push on the same connection, so the coordinator applies the push first and the next weights
   * include it (no added staleness). With `prefetch` too, the next lease is asked for while
   * computing (hides the whole round trip, one version of own staleness). Exactly-once as before:
   * a push whose answer was lost is sent again (same lease id) and answered 'duplicate'.
   */
  readonly pipeline?: boolean | undefined;
  readonly maxInFlight?: number | undefined;
  /**
   * Keep received training rows (up to this many bytes) so that later epochs bring only rows not
   * seen yet (default 128 MiB, which holds MNIST's 47 MB with the book's 2x margin, see
   * row-cache.ts; 0: no cache, every lease brings its rows).
   */
  readonly rowCacheBytes?: number | undefined;
  /** Wire encodings announced to the coordinator (default: all this code knows; ['f32']: none). */
  readonly codecs?: readonly Encoding[] | undefined;
  /** Row encodings announced (default: what this runtime can inflate; []: rows as they are). */
  readonly rowCodecs?: readonly RowCodec[] | undefined;
  /** Test hook: runs after the gradient is computed, before the push. */
  readonly beforePush?: ((lease: LeasePayload) => Promise<void> | void) | undefined;
}

export class WorkerLoop {
  readonly stats: WorkerStats = {
    shardsDone: 0,
    samplesDone: 0,
    accepted: 0,
    refused: 0,
    refusedByCode: {},
    computeMs: 0,
    bytesDown: 0,
    bytesUp: 0,
    samplesPerSec: 0,
    lastLoss: null,
    lastStaleness: null,
    prefetchesDropped: 0,
  };
  private job: JobDescriptor | null = null;
  private model: tf.LayersModel | null = null;
  private cachedVersion: number | null = null;
  private registered = false;
  private stopped = false;
  private paused = false;
  private wake = new AbortController();
  private currentLease: LeasePayload | null = null;
  private nextLease: Promise<LeaseAck> | null = null;
  /** A computed gradient whose push got no answer (connection lost): sent again after reconnecting. */
  private pendingPush: GradientPush | null = null;
  /** Pipelined pushes not answered yet, by lease id; `failed`: no answer came (sent again later). */
  private readonly inFlight = new Map<string, { push: GradientPush; failed: boolean; done: Promise<void> }>();
  /** Error feedback of a lossy gradient encoding, kept for the job in hand (reset on a new job). */
  private feedback: { key: string; ef: ErrorFeedback } | null = null;
  /** The weights held (float32, all tensors), which a delta is added to; and deltas applied since a whole model. */
  private weightsVec: Float32Array | null = null;
  private deltaChain = 0;
  /** Rows kept across epochs for the job in hand (null: off). */
  private rowCache: RowCache | null = null;
  /** Leases in a row whose rows did not fit the cache (see step()). */
  private cacheMisses = 0;
  /** The job whose rows the cache holds. */
  private rowCacheJob: string | null = null;
  /** This worker's own id, kept across reconnections (see HelloRequest.workerId). */
  identity: string;
  /** The coordinator-issued credential for `identity` (HelloAck.credential), sent in every hello. */
  credential: string | undefined;
  private dutyCycle: number;
  private backoffMs: number;
  private recent: { at: number; samples: number }[] = [];
  private leases = 0;
  /** Announced in every hello; prepareJob may replace them (measured backend, probe figures). */
  private capabilities: WorkerCapabilities;
  /** Jobs this device cannot train (refused here, or known so by the coordinator): never taken again. */
  private readonly refusedJobs = new Set<string>();
  /** How this worker takes a lease's rows besides as they are (announced in every hello). */
  private rowCodecs: RowCodec[];
  /** Non-finite gradients in a row on the backend in use (see NON_FINITE_LIMIT). */
  private nonFiniteRun = 0;
  /** Backends that failed the job in hand after their probe: prepareJob does not choose them again. */
  private failedBackends: { jobId: string; failures: BackendFailure[] } | null = null;
  workerId: string | null = null;

  constructor(
    private readonly link: CoordinatorLink,
    private readonly opts: LoopOptions,
  ) {
    this.capabilities = opts.capabilities;
    this.rowCodecs = [...(opts.rowCodecs ?? availableRowCodecs())];
    this.dutyCycle = clampDuty(opts.dutyCycle ?? 1);
    this.credential = opts.credential;
    this.identity = opts.workerId ?? `w-${Math.random().toString(36).slice(2, 10)}${Math.random().toString(36).slice(2, 10)}`;
    this.backoffMs = opts.minBackoffMs ?? 250;
    link.onConnect(() => {
      this.registered = false;
      this.poke();
    });
    link.onJobUpdate((u) => opts.listener?.jobUpdate?.(u));
  }

  pause(): void {
    this.paused = true;
    this.poke();
  }
  resume(): void {
    this.paused = false;
    this.poke();
  }
  setDutyCycle(d: number): void {
    this.dutyCycle = clampDuty(d);
  }
  get isPaused(): boolean {
    return this.paused;
  }

  /** Stops the loop; a lease in hand is handed back at once instead of left to expire. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.poke();
    const lease = this.currentLease;
    this.currentLease = null;
    await Promise.all([lease ? this.release(lease.leaseId) : Promise.resolve(), this.dropPrefetched()]);
  }

  private async release(leaseId: string): Promise<void> {
    if (!this.link.connected) return;
    try {
      await this.link.releaseLease(leaseId);
    } catch {
      /* the deadline will reclaim it */
    }
  }

  /** Hands back a lease asked for ahead of time (pause, stop). */
  private async dropPrefetched(): Promise<void> {
    const next = this.nextLease;
    this.nextLease = null;
    if (!next) return;
    try {
      const res = await next;
      if (res.ok) await this.release(res.lease.leaseId);
    } catch {
      /* nothing was granted, or the deadline will reclaim it */
    }
  }

  /**
   * Hands the prefetched lease back when its weights are older than `version` and, unless the loop
   * is about to end, pause or rest, asks for the next one in the same round trip (the release is
   * sent first, so the shard it frees can be the one granted).
   */
  private async dropIfBehind(job: JobDescriptor, version: number, last: boolean): Promise<void> {
    const pending = this.nextLease;
    const next = await pending?.catch(() => null);
    // stop() or a pause took (and handed back) the prefetched lease while it was on its way.
    if (this.nextLease !== pending || this.stopped) return;
    if (!next?.ok || next.lease.baseVersion >= version) return;
    this.stats.prefetchesDropped++;
    this.nextLease = null;
    const released = this.release(next.lease.leaseId);
    if (!last && !this.paused && this.dutyCycle >= 1) {
      const ask = this.link.requestLease(this.leaseRequest(job));
      ask.catch(() => undefined); // awaited (and its failure handled) by the next step
      this.nextLease = ask;
    }
    await released;
  }

  /** Runs until stop(), the job finishes, or maxLeases is reached. */
  async run(): Promise<void> {
    try {
      while (!this.stopped) {
        if (this.paused) {
          await this.dropPrefetched();
          this.setState('paused');
          await this.waitForPoke(60_000);
          continue;
        }
        try {
          const done = await this.step();
          if (done) break;
          this.backoffMs = this.opts.minBackoffMs ?? 250;
        } catch (err) {
          // Transport failure (timeout, disconnect): back off exponentially with jitter, then retry.
          this.registered = false;
          this.setState('retrying', errorText(err));
          const max = this.opts.maxBackoffMs ?? 10_000;
          const wait = this.backoffMs * (0.5 + Math.random() * 0.5);
          this.backoffMs = Math.min(max, this.backoffMs * 2);
          await this.waitForPoke(wait);
        }
      }
    } finally {
      if (this.stopped) this.setState('stopped');
      this.model?.dispose();
      this.model = null;
    }
  }

  /** One lease: returns true when the loop should end. */
  private async step(): Promise<boolean> {
    const { link, opts } = this;
    if (!this.registered) await this.hello();
    if (!this.job || !this.model) {
      this.setState('downloading', 'model');
      const res = await link.getJob({ jobId: opts.jobId });
      if (!res.ok) return this.onFailure(res.code, res.message, res.retryAfterMs);
      const taken = await this.takeJob(res.job);
      if (taken !== null) return taken;
    }
    const job = this.job!;
    const model = this.model!;

    await this.resendFailed();
    if (this.pendingPush) {
      // Idempotent by lease id: if the first attempt landed, the answer is 'duplicate'.
      this.setState('uploading', 'retrying the last gradient');
      const push = this.pendingPush;
      const ack = await link.pushGradient(push);
      this.pendingPush = null;
      this.countAck(ack, push.numSamples);
    }

    const started = opts.clock.now();
    const prefetched = this.nextLease;
    this.nextLease = null;
    if (!prefetched) this.setState('waiting', 'asking for work');
    const res = await (prefetched ?? link.requestLease(this.leaseRequest(job)));
    if (!res.ok) return this.onFailure(res.code, res.message, res.retryAfterMs);
    const { lease, weights } = res;
    this.currentLease = lease;
    this.stats.bytesDown += toBytes(lease.x).byteLength + toBytes(lease.y).byteLength;
    if (weights) {
      this.setState('downloading', `weights v${weights.version}`);
      const dec = decodeVector(weights.encoding ?? 'f32', toBytes(weights.data), tensorSizes(weights.specs));
      if (!dec.ok) throw new Error(`weights v${weights.version}: ${dec.message}`);
      let vec = dec.values;
      if (weights.deltaFrom !== undefined) {
        const held = this.weightsVec;
        if (weights.deltaFrom !== this.cachedVersion || !held || held.length !== vec.length) {
          // A delta against weights this worker no longer holds: ask again for the whole model.
          this.cachedVersion = null;
          this.weightsVec = null;
          this.currentLease = null;
          await this.release(lease.leaseId);
          return false;
        }
        for (let i = 0; i < held.length; i++) held[i]! += vec[i]!;
        vec = held;
        this.deltaChain++;
      } else {
        this.deltaChain = 0;
      }
      setWeightsFromPacked(model, weights.specs, vec);
      this.weightsVec = vec;
      this.cachedVersion = weights.version;
      this.stats.bytesDown += toBytes(weights.data).byteLength;
    }
    if (this.stopped) {
      // Stopped while the lease was on its way: stop() found nothing to hand back, so hand it back here.
      this.currentLease = null;
      await this.release(lease.leaseId);
      return true;
    }
    let x = toBytes(lease.x);
    let y = toBytes(lease.y);
    if (lease.rowsEncoding !== undefined) {
      const rows = lease.fresh !== undefined ? toBytes(lease.fresh).byteLength / 4 : lease.numSamples;
      try {
        if (lease.rowsEncoding !== 'deflate-raw') throw new Error(`rows in an unknown encoding: ${String(lease.rowsEncoding)}`);
        x = inflateRows(x, rows * featureRowBytes(job.data));
        y = inflateRows(y, rows * targetRowBytes(job.data.target));
      } catch {
        // Rows this runtime cannot inflate: announce none from now on (a new hello) and take the lease again as it is.
        this.rowCodecs = [];
        this.registered = false;
        this.rowCache?.reset();
        this.currentLease = null;
        await Promise.all([this.release(lease.leaseId), this.dropPrefetched()]);
        return false;
      }
    }
    if (lease.rowIds !== undefined && lease.fresh !== undefined) {
      const full = this.rowCache?.assemble(lease.rowIds, lease.fresh, x, y) ?? null;
      if (!full) {
        // Out of step with the coordinator's idea of this cache: start a new one, hand the lease back.
        // Twice in a row: a fresh cache did not help, so go on without one (every lease brings its rows).
        this.cacheMisses++;
        if (this.cacheMisses >= 2) this.rowCache = null;
        else this.rowCache?.reset();
        this.currentLease = null;
        await this.release(lease.leaseId);
        return false;
      }
      x = full.x;
      y = full.y;
      this.cacheMisses = 0;
    }

    if (opts.prefetch === true && this.dutyCycle >= 1 && !this.paused) {
      const ask = link.requestLease(this.leaseRequest(job));
      ask.catch(() => undefined); // awaited (and its failure handled) by the next step
      this.nextLease = ask;
    }
    this.setState('computing', `shard ${lease.shardIndex} of epoch ${lease.epoch + 1}`);
    const t0 = opts.clock.now();
    let grad: Awaited<ReturnType<typeof computeGradients>>;
    try {
      const batch = { x, y, numSamples: lease.numSamples };
      // `local` jobs: H inner steps, pushing the pseudo-gradient (shared/training/local-steps.ts).
      grad = await (lease.local ? computeLocalUpdate(model, job, batch, lease.local) : computeGradients(model, job, batch));
    } catch (err) {
      // A local failure (a kernel this backend lacks, a lost GPU device), not a transport one:
      // retrying would fail the same way, so hand the shard back and refuse the job.
      this.currentLease = null;
      await Promise.all([this.release(lease.leaseId), this.dropPrefetched()]);
      return this.refuseJob(job.id, `the ${this.capabilities.backend} gradient step failed: ${errorText(err)}`);
    }
    const computeMs = opts.clock.now() - t0;
    this.stats.computeMs += computeMs;
    if (this.stopped) return true;
    const finite = allFinite(grad.gradients);
    this.nonFiniteRun = finite ? 0 : this.nonFiniteRun + 1;
    if (this.nonFiniteRun >= NON_FINITE_LIMIT) {
      this.currentLease = null;
      await Promise.all([this.release(lease.leaseId), this.dropPrefetched(), this.drainInFlight()]);
      return this.backendFailed(job, `non-finite gradients on ${NON_FINITE_LIMIT} shards in a row`);
    }
    await opts.beforePush?.(lease);
    if (this.stopped) return true;

    this.setState('uploading');
    // A non-finite gradient travels as float32, outside the error feedback (whose residual it would
    // poison, and whose int8 or top-k encoding would hide it): the coordinator refuses it and counts
    // its shard's failures (a shard that fails everywhere is set aside).
    const encoding = finite ? (lease.gradientEncoding ?? 'f32') : 'f32';
    const data = encoding === 'f32' ? (grad.gradients.buffer as ArrayBuffer) : this.feedbackFor(job, encoding, lease.topkRatio).encode(grad.gradients);
    const push: GradientPush = {
      leaseId: lease.leaseId,
      baseVersion: lease.baseVersion,
      numSamples: lease.numSamples,
      loss: grad.loss,
      computeMs,
      specs: job.trainableSpecs,
      data,
      ...(encoding !== 'f32' ? { encoding } : {}),
    };
    this.currentLease = null;
    this.stats.bytesUp += data.byteLength;
    this.stats.lastLoss = grad.loss;
    this.leases++;
    const last = opts.maxLeases !== undefined && this.leases >= opts.maxLeases;
    // A `local` lease asked for while this one computed carries the weights of that moment: once a
    // step has landed since (this push's, or another worker's), a pseudo-gradient from them counts
    // the step's progress twice (two tabs with prefetch stalled at 0.89-0.92). Such a push waits for
    // its ack, which says where the version is, and a prefetched lease behind it is asked for again.
    const prefetchedLocal = lease.local !== undefined && this.nextLease !== null;
    if (opts.pipeline === true && !last && this.dutyCycle >= 1 && !this.paused && !prefetchedLocal) {
      this.sendPipelined(push);
      // Behind the push on the same connection: the coordinator answers it with weights that include the push.
      if (!this.nextLease) {
        const ask = link.requestLease(this.leaseRequest(job));
        ask.catch(() => undefined);
        this.nextLease = ask;
      }
      await this.inFlightBelow(Math.max(1, opts.maxInFlight ?? 2));
      return false;
    }
    await this.drainInFlight();
    this.pendingPush = push;
    let ack = await link.pushGradient(push);
    // Refused at the coordinator's door (rate, back-pressure), or a transient coordinator error that
    // says when to retry (in a cluster: the owner changed while the push was relayed): the gradient
    // is still good; resend it, same lease id (a push that did land is answered 'duplicate').
    for (let tries = 0; !ack.ok && isTransient(ack) && tries < 8 && !this.stopped; tries++) {
      await this.waitForPoke(ack.retryAfterMs ?? 500);
      ack = await link.pushGradient(push);
    }
    this.pendingPush = null;
    this.countAck(ack, lease.numSamples);
    // The version now: `applied` names the step this push made, `buffered` the one it will join;
    // `duplicate` (a resend) the step it joined, so at least ack.version - 1.
    if (prefetchedLocal && ack.ok) await this.dropIfBehind(job, ack.status === 'applied' ? ack.version : ack.version - 1, last);
    if (last) {
      await this.dropPrefetched();
      return true;
    }

    // Usage cap: after computing for c ms, rest c * (1 - d) / d so compute is a fraction d of time.
    if (this.dutyCycle < 1) {
      const busy = opts.clock.now() - started;
      const rest = (busy * (1 - this.dutyCycle)) / this.dutyCycle;
      this.setState('waiting', `usage cap ${Math.round(this.dutyCycle * 100)}%`);
      await this.waitForPoke(rest);
    }
    return false;
  }

  /** Pinned loops send what they always did; unpinned ones accept being moved (JOB_REASSIGNED). */
  private leaseRequest(job: JobDescriptor): LeaseRequest {
    // Int8 deltas round: after MAX_DELTA_CHAIN of them in a row, the whole model again (bounded drift).
    const cachedVersion = this.deltaChain >= MAX_DELTA_CHAIN ? null : this.cachedVersion;
    const req = { jobId: job.id, cachedVersion, ...(this.rowCache && this.rowCache.capacity > 0 ? { rowCache: this.rowCache.claim } : {}) };
    return this.opts.jobId === undefined ? { ...req, movable: true } : req;
  }

  /**
   * The backend in use cannot train `job` after all: choose another (prepareJob, told which failed
   * and why), or refuse the job when there is none or no way to choose.
   */
  private async backendFailed(job: JobDescriptor, error: string): Promise<boolean> {
    const backend = this.capabilities.backend;
    this.nonFiniteRun = 0;
    if (!this.opts.prepareJob) return this.refuseJob(job.id, `the ${backend} gradient step gave ${error}`);
    if (this.failedBackends?.jobId !== job.id) this.failedBackends = { jobId: job.id, failures: [] };
    this.failedBackends.failures.push({ backend, error });
    this.model?.dispose();
    this.model = null;
    this.job = null;
    this.cachedVersion = null;
    return (await this.takeJob(job, `${backend} gave ${error}: measuring the other backends`)) ?? false;
  }

  /** Probes (prepareJob) and adopts a job: null when ready to lease, else what step() returns. */
  private async takeJob(job: JobDescriptor, why = 'measuring this device on the model'): Promise<boolean | null> {
    const { opts } = this;
    if (opts.prepareJob) {
      this.setState('probing', why);
      let prep: JobPreparation;
      try {
        prep = await opts.prepareJob(job, this.failedBackends?.jobId === job.id ? [...this.failedBackends.failures] : []);
      } catch (err) {
        // Local, not transport: probing again would fail the same way.
        prep = { ok: false, reason: `probing this device failed: ${errorText(err)}` };
      }
      if (!prep.ok) return this.refuseJob(job.id, prep.reason);
      if (prep.capabilities) {
        // Same worker id: the coordinator just learns the new capabilities.
        this.capabilities = prep.capabilities;
        await this.hello();
      }
    }
    await this.adoptJob(job);
    return null;
  }

  /**
   * Unpinned loops only: asks the coordinator for a job other than `from` and moves there (lease
   * in hand released, model disposed). Returns what step() returns, or undefined when there is no
   * other job this device can train (or the loop is pinned): the caller then does as before.
   */
  private async moveOn(from: string | undefined): Promise<boolean | undefined> {
    if (this.opts.jobId !== undefined || from === undefined || this.stopped) return undefined;
    const res = await this.link.getJob({});
    if (!res.ok || res.job.id === from || this.refusedJobs.has(res.job.id)) return undefined;
    const lease = this.currentLease;
    this.currentLease = null;
    await Promise.all([lease ? this.release(lease.leaseId) : Promise.resolve(), this.dropPrefetched()]);
    this.model?.dispose();
    this.model = null;
    this.job = null;
    this.cachedVersion = null;
    this.setState('downloading', `moving to job ${res.job.name}`);
    return (await this.takeJob(res.job)) ?? false;
  }

  /** The job's error feedback for this encoding (a new one when the encoding or ratio changes). */
  private feedbackFor(job: JobDescriptor, encoding: Encoding, topkRatio: number | undefined): ErrorFeedback {
    const key = `${job.id}/${encoding}/${topkRatio ?? ''}`;
    if (this.feedback?.key !== key) this.feedback = { key, ef: new ErrorFeedback(encoding, tensorSizes(job.trainableSpecs), topkRatio) };
    return this.feedback.ef;
  }

  private sendPipelined(push: GradientPush): void {
    const entry = { push, failed: false, done: Promise.resolve() };
    entry.done = this.link.pushGradient(push).then(
      (ack) => {
        this.inFlight.delete(push.leaseId);
        this.countAck(ack, push.numSamples);
      },
      () => {
        entry.failed = true;
      },
    );
    this.inFlight.set(push.leaseId, entry);
  }

  private unanswered(): { done: Promise<void> }[] {
    return [...this.inFlight.values()].filter((e) => !e.failed);
  }

  /** Backpressure: waits until fewer than `max` pipelined pushes are unanswered. */
  private async inFlightBelow(max: number): Promise<void> {
    for (let open = this.unanswered(); open.length >= max; open = this.unanswered()) await Promise.race(open.map((e) => e.done));
  }

  /** Waits for every pipelined push's answer, sending again those whose answer was lost. */
  private async drainInFlight(): Promise<void> {
    await Promise.all(this.unanswered().map((e) => e.done));
    await this.resendFailed();
  }

  /** Pipelined pushes that got no answer (timeout, disconnect): sent again, same lease id (idempotent). */
  private async resendFailed(): Promise<void> {
    for (const [leaseId, e] of [...this.inFlight]) {
      if (!e.failed) continue;
      this.setState('uploading', 'retrying a gradient');
      const ack = await this.link.pushGradient(e.push);
      this.inFlight.delete(leaseId);
      this.countAck(ack, e.push.numSamples);
    }
  }

  private countAck(ack: PushAck, samples: number): void {
    this.stats.shardsDone++;
    this.stats.samplesDone += samples;
    if (ack.ok) {
      this.stats.accepted++;
      this.stats.lastStaleness = ack.staleness;
    } else {
      this.stats.refused++;
      this.stats.refusedByCode[ack.code] = (this.stats.refusedByCode[ack.code] ?? 0) + 1;
      if (ack.code === ErrorCode.NotRegistered) this.registered = false;
    }
    this.noteThroughput(samples);
    this.opts.listener?.stats?.(this.stats);
  }

  private async hello(): Promise<void> {
    this.setState('connecting');
    const capabilities = { ...this.capabilities, codecs: this.opts.codecs ?? ENCODINGS, rowCodecs: this.rowCodecs };
    const hello = await this.link.hello({ protocol: PROTOCOL_VERSION, workerId: this.identity, ...(this.credential ? { credential: this.credential } : {}), capabilities });
    if (!hello.ok) throw new Error(`${hello.code}: ${hello.message}`);
    this.workerId = hello.workerId;
    // The coordinator's id and credential replace ours: reconnections keep leases and retried pushes.
    if (hello.credential) [this.identity, this.credential] = [hello.workerId, hello.credential];
    if (hello.credential) this.opts.onIdentity?.(hello.workerId, hello.credential);
    this.registered = true;
  }

  /** This device cannot train the job: tell the coordinator (best effort), then move on or end the loop. */
  private async refuseJob(jobId: string, reason: string): Promise<boolean> {
    const text = reason.slice(0, 1000);
    this.refusedJobs.add(jobId);
    if (this.link.connected) {
      try {
        await this.link.refuseJob({ jobId, reason: text });
      } catch {
        /* the coordinator forgets this worker's lease when its connection closes anyway */
      }
    }
    const moved = await this.moveOn(jobId).catch(() => undefined);
    if (moved !== undefined) return moved;
    this.setState('unsupported', text);
    return true;
  }

  private async adoptJob(job: JobDescriptor): Promise<void> {
    this.model?.dispose();
    this.model = await buildModel(job.modelTopology);
    this.cachedVersion = null;
    this.weightsVec = null;
    this.deltaChain = 0;
    this.nonFiniteRun = 0;
    this.feedback = null;
    const cacheBytes = this.opts.rowCacheBytes ?? DEFAULT_ROW_CACHE_BYTES;
    // The same job again (another backend after a failed one): its rows are still good.
    if (this.rowCacheJob !== job.id) {
      this.cacheMisses = 0;
      this.rowCache = cacheBytes > 0 ? new RowCache(featureRowBytes(job.data), targetRowBytes(job.data.target), cacheBytes) : null;
      this.rowCacheJob = job.id;
    }
    const own = trainableSpecs(this.model);
    if (own.length !== job.trainableSpecs.length) throw new Error('model topology does not match the job');
    this.job = job;
    this.opts.listener?.job?.(job);
  }

  private async onFailure(code: string, message: string, retryAfterMs?: number): Promise<boolean> {
    this.currentLease = null;
    const from = this.job?.id;
    switch (code) {
      case ErrorCode.JobReassigned:
        return (await this.moveOn(from)) ?? false;
      case ErrorCode.JobFinished: {
        const moved = await this.moveOn(from);
        if (moved !== undefined) return moved;
        this.setState('finished', message);
        return true;
      }
      case ErrorCode.JobPaused: {
        const moved = await this.moveOn(from);
        if (moved !== undefined) return moved;
        this.setState('paused-by-admin', message);
        await this.waitForPoke(retryAfterMs ?? 2000);
        return false;
      }
      case ErrorCode.NoWork:
      case ErrorCode.Finalizing:
        this.setState('waiting', message);
        await this.waitForPoke(retryAfterMs ?? 1000);
        return false;
      case ErrorCode.NotRegistered:
        this.registered = false;
        return false;
      case ErrorCode.Unsupported: {
        if (from !== undefined) this.refusedJobs.add(from);
        const moved = await this.moveOn(from);
        if (moved !== undefined) return moved;
        this.setState('unsupported', message);
        return true;
      }
      case ErrorCode.UnknownJob:
        this.job = null;
        this.setState('waiting', message);
        await this.waitForPoke(retryAfterMs ?? 2000);
        return false;
      default:
        if (TRANSIENT_CODES.has(code as ErrorCode)) {
          this.setState('retrying', message);
          await this.waitForPoke(retryAfterMs ?? 1000);
          return false;
        }
        throw new Error(`${code}: ${message}`);
    }
  }

  private noteThroughput(samples: number): void {
    const now = this.opts.clock.now();
    this.recent.push({ at: now, samples });
    while (this.recent.length > 20) this.recent.shift();
    const first = this.recent[0]!;
    const span = now - first.at;
    const total = this.recent.slice(1).reduce((s, r) => s + r.samples, 0);
    if (span > 0) this.stats.samplesPerSec = (total * 1000) / span;
  }

  private setState(s: WorkerState, detail?: string): void {
    this.opts.listener?.state?.(s, detail);
  }

  private poke(): void {
    this.wake.abort();
    this.wake = new AbortController();
  }

  private waitForPoke(ms: number): Promise<void> {
    return this.opts.clock.sleep(ms, this.wake.signal);
  }
}

const MAX_DELTA_CHAIN = 16;

function clampDuty(d: number): number {
  return Number.isFinite(d) ? Math.min(1, Math.max(0.05, d)) : 1;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Every gradient value finite (a non-finite loss alone is recorded as unknown by the coordinator, not refused). */
function allFinite(gradients: Float32Array): boolean {
  for (let i = 0; i < gradients.length; i++) if (!Number.isFinite(gradients[i]!)) return false;
  return true;
}

/** A refusal worth sending the same push again for: the door's, or an error with a retry time. */
function isTransient(ack: { ok: false; code: string; retryAfterMs?: number | undefined }): boolean {
  return ack.code === ErrorCode.RateLimited || ack.code === ErrorCode.Backpressure || (ack.code === ErrorCode.Internal && ack.retryAfterMs !== undefined);
}
