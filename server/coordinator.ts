// Assembles a coordinator: port -> data folder lock -> tfjs -> dataset -> job registry -> HTTP +
// socket.io. The port is bound first, so a busy port or an unknown host fails before anything is
// written in the data folder. Used by server/main.ts (the CLI) and by integration tests (port 0).

import { Server as IoServer } from 'socket.io';
import { randomBytes, randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { systemClock, type Clock } from '../shared/clock.ts';
import { initNodeBackend } from '../shared/training/node-backend.ts';
import type { Dataset } from './data/dataset.ts';
import { JobRegistry } from './jobs/registry.ts';
import { DEFAULT_LIMITS, type SubmitLimits } from './jobs/submission.ts';
import { demoConfig, type DemoName } from './jobs/demos.ts';
import type { JobConfig } from './jobs/job-config.ts';
import type { Logger } from './jobs/job-runtime.ts';
import { WorkTurns } from './transport/work-turns.ts';
import { attachWorkerHandlers, type FlockServer, type TransportObserver, type WorkerInfo } from './transport/socket-handlers.ts';
import { createHttpHandler } from './http/http-server.ts';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { acquireDataLock, type DataLock } from './storage/data-lock.ts';
import { adminTokenFor } from './http/admin-token-file.ts';
import { WorkerStatsBook } from './jobs/worker-stats.ts';
import { TelemetryBook } from './jobs/job-telemetry.ts';
import { AdminFeed, adminAuth } from './transport/admin-socket.ts';
import { FlockMetrics } from './http/metrics.ts';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { StateStore } from './storage/state-store.ts';
import { MemoryStateStore } from './storage/memory-state-store.ts';
import { SqliteStateStore } from './storage/sqlite-state-store.ts';
import type { SchedulerPolicy } from './jobs/scheduler.ts';
import { DEFAULT_DOOR_POLICY, type DoorPolicy } from './security/limits.ts';
import { installDoor, type Door } from './security/door.ts';
import { WorkerGuard } from './security/worker-guard.ts';
import { sharedWorkerSecret, WorkerCredentials, workerSecretFor } from './security/credentials.ts';
import { largestGradientBytes } from './security/message-size.ts';
import { DEFAULT_SPOT_CHECK_POLICY, SpotChecker } from './validation/spot-checker.ts';
import type { SameAddressReplicas } from './validation/same-address.ts';
import { Cluster } from './cluster/cluster.ts';
import { DEFAULT_WORKER_ROW_POLICY, pruneWorkerRows, type WorkerRowPolicy } from './storage/worker-rows.ts';

export interface CoordinatorOptions {
  readonly port: number;
  readonly host: string;
  readonly dataDir: string;
  readonly clientDir: string;
  readonly adminToken?: string | undefined;
  /** Demo job created when the data dir has no job yet; null for none. */
  readonly demo: DemoName | null;
  readonly demoOverrides?: Partial<JobConfig> | undefined;
  readonly clock?: Clock | undefined;
  readonly log?: Logger | undefined;
  readonly dataset?: Dataset | undefined;
  readonly sweepIntervalMs?: number | undefined;
  /**
   * Durable state: 'sqlite' (default, <dataDir>/flock.db), 'memory' (nothing survives), or 'redis'
   * (shared by several coordinator processes: server/cluster/cluster.ts; needs `redis`).
   */
  readonly store?: 'sqlite' | 'memory' | 'redis' | undefined;
  /** FLOCK_STORE=redis: where, key prefix, ownership lease, advertised URL, data chunk size (tests). */
  readonly redis?: { url: string; prefix?: string | undefined; leaderTtlMs?: number | undefined; preAggregateMs?: number | undefined; advertiseUrl?: string | undefined; dataChunkBytes?: number | undefined } | undefined;
  readonly sqliteSync?: 'NORMAL' | 'FULL' | undefined;
  /** Fault injection only: pause inside every checkpoint write (FLOCK_FAULT_CHECKPOINT_PAUSE_MS). */
  readonly checkpointPauseMs?: number | undefined;
  /** Size limits on submitted models and datasets (FLOCK_MAX_MODEL_BYTES, FLOCK_MAX_DATASET_BYTES). */
  readonly limits?: SubmitLimits | undefined;
  /** socket.io message size cap; weights of big models exceed the 1 MB default. */
  readonly maxMessageBytes?: number | undefined;
  /** Placement of workers that pin no job (dwell time, margin...): server/jobs/scheduler.ts defaults. */
  readonly scheduling?: Partial<SchedulerPolicy> | undefined;
  /** Limits at the door (rates, connections per address, leases per worker, trusted proxies). */
  readonly door?: Partial<DoorPolicy> | undefined;
  /** The CLI: lock the data folder (one coordinator per folder) and keep the admin token in it. */
  readonly ownDataDir?: boolean | undefined;
  /** Serve /metrics (no token) on this port of `host` as well; 0 picks one. Absent: only the token-checked /metrics. */
  readonly metricsPort?: number | undefined;
  /** Evaluate each job in a worker thread (the CLI does); absent: on the event loop. */
  readonly evaluationThread?: boolean | undefined;
  /** When records of workers that never completed a lease are pruned (server/storage/worker-rows.ts). */
  readonly workerRows?: Partial<WorkerRowPolicy> | undefined;
  /** FLOCK_SPOT_CHECK_SAME_ADDRESS: where a spot check may replicate to the first worker's own address (default: nowhere). */
  readonly spotCheckSameAddress?: SameAddressReplicas | undefined;
}

/** A start-up failure the user can fix; its message is one line: what, which setting, what to do. */
export class StartupError extends Error {}

/** The one-line explanation of a failed listen(). */
export function listenFailure(err: NodeJS.ErrnoException, host: string, port: number): string {
  switch (err.code) {
    case 'EADDRINUSE':
      return `port ${port} on ${host} is already in use (another Flock coordinator?): stop that process, or set PORT to a free port (PORT=0 picks one)`;
    case 'EACCES':
      return `port ${port} on ${host} needs privileges this user lacks: set PORT to a port above 1023`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_NONAME':
      return `HOST=${host} is not a known host name: set HOST to an address of this machine, e.g. 127.0.0.1 (this machine only) or 0.0.0.0 (all interfaces)`;
    case 'EADDRNOTAVAIL':
      return `HOST=${host} is not an address of this machine: set HOST to one of its addresses, e.g. 127.0.0.1 or 0.0.0.0`;
    default:
      return `cannot listen on ${host}:${port}: ${err.message}`;
  }
}

/** Binds a bare server (answering 503 until the coordinator is assembled) or throws a StartupError. */
async function bind(port: number, host: string): Promise<Server> {
  const http = createServer((_req: IncomingMessage, res: ServerResponse) => {
    res.writeHead(503, { 'Content-Type': 'text/plain', 'Retry-After': '2' });
    res.end('the coordinator is starting\n');
  });
  await new Promise<void>((resolve, reject) => {
    http.once('error', (err: NodeJS.ErrnoException) => reject(new StartupError(listenFailure(err, host, port))));
    http.listen(port, host, () => resolve());
  });
  return http;
}

export interface Coordinator {
  readonly url: string;
  readonly port: number;
  readonly adminToken: string;
  readonly registry: JobRegistry;
  readonly io: FlockServer;
  readonly state: StateStore;
  /** FLOCK_STORE=redis: this process's place in the cluster; null otherwise. */
  readonly cluster: Cluster | null;
  /** True when this start created the demo job (the data dir held no job). */
  readonly createdDemo: boolean;
  /** Per-worker statistics (dashboard workers table). */
  readonly workerStats: WorkerStatsBook;
  /** Rate limits, connection counts, refusal counts and the transport's message cap. */
  readonly door: Door;
  readonly guard: WorkerGuard;
  readonly spotChecker: SpotChecker;
  readonly metrics: FlockMetrics;
  /** The port of the metrics-only server (metricsPort), or null. */
  readonly metricsPort: number | null;
  /** Graceful stop: no new leases, wait up to drainMs for outstanding ones, checkpoint, close. */
  shutdown(drainMs: number): Promise<void>;
  close(): Promise<void>;
}

export const consoleLogger: Logger = {
  info: (m) => console.log(`[flock] ${m}`),
  warn: (m) => console.warn(`[flock] WARN ${m}`),
};

export async function startCoordinator(opts: CoordinatorOptions): Promise<Coordinator> {
  const clock = opts.clock ?? systemClock;
  const log = opts.log ?? consoleLogger;
  const http = await bind(opts.port, opts.host);
  let lock: DataLock | null = null;
  try {
    if (opts.ownDataDir) {
      const got = acquireDataLock(opts.dataDir);
      if (!got.ok) throw new StartupError(got.error);
      lock = got.lock;
      // However the process ends (process.exit included), the lock goes with it; SIGKILL leaves a stale one.
      process.once('exit', got.lock.release);
      if (got.tookOverFrom) log.info(`took over the lock of ${opts.dataDir} from process ${got.tookOverFrom.pid}, which is gone`);
    }
    return await assemble(opts, clock, log, http, lock);
  } catch (err) {
    await new Promise<void>((r) => http.close(() => r()));
    lock?.release();
    throw err;
  }
}

async function assemble(opts: CoordinatorOptions, clock: Clock, log: Logger, http: Server, lock: DataLock | null): Promise<Coordinator> {
  await initNodeBackend('wasm');
  await mkdir(opts.dataDir, { recursive: true });
  // Uploads that a crash interrupted are never half-made jobs: their staging folders go.
  await rm(path.join(opts.dataDir, 'staging'), { recursive: true, force: true });
  const doorPolicy: DoorPolicy = { ...DEFAULT_DOOR_POLICY, ...opts.door };
  // Filled once the door exists: poison shards count distinct addresses, not ids.
  let guardRef: WorkerGuard | null = null;
  if (opts.store === 'redis' && !opts.redis) throw new StartupError('FLOCK_STORE=redis needs FLOCK_REDIS_URL');
  let cluster: Cluster | null = null;
  if (opts.store === 'redis' && opts.redis) {
    try {
      cluster = await Cluster.open({ url: opts.redis.url, prefix: opts.redis.prefix ?? 'flock', leaderTtlMs: opts.redis.leaderTtlMs ?? 3000, preAggregateMs: opts.redis.preAggregateMs, log, dataChunkBytes: opts.redis.dataChunkBytes });
    } catch (err) {
      throw new StartupError(`cannot reach Redis at FLOCK_REDIS_URL=${opts.redis.url}: ${(err as Error).message}`);
    }
  }
  const state: StateStore = cluster ? cluster.state : opts.store === 'memory' ? new MemoryStateStore() : new SqliteStateStore(path.join(opts.dataDir, 'flock.db'), opts.sqliteSync ?? 'NORMAL');
  // Worker credentials' secret: one for every process of a cluster (in Redis), so a worker keeps its
  // id through a takeover; else a file in the data folder.
  const workerSecret = cluster ? await sharedWorkerSecret(cluster.state.redis, opts.redis?.prefix ?? 'flock') : workerSecretFor(opts.dataDir);
  const registry = new JobRegistry({ clock, mnist: opts.dataset, log, state, newId: () => randomUUID(), dataDir: opts.dataDir, keepCheckpoints: 3, checkpointPauseMs: opts.checkpointPauseMs, evaluationThread: opts.evaluationThread, checkpoints: cluster?.checkpoints(), sharedData: cluster?.jobData(), failureIdentity: (w) => guardRef?.addressOf(w) ?? w });
  // With Redis the jobs are loaded (and the demo made) by whichever process is elected to own them.
  let createdDemo = false;
  // Records of workers that never completed a lease: pruned by whoever owns the state (this
  // process, or with Redis the elected owner, the only one writing worker records).
  const workerRows: WorkerRowPolicy = { ...DEFAULT_WORKER_ROW_POLICY, ...opts.workerRows };
  const pruneRows = (): void => {
    const n = pruneWorkerRows(state, clock, workerRows);
    if (n > 0) log.info(`pruned ${n} record(s) of workers that never completed a lease (idle ${Math.round(workerRows.maxIdleMs / 60_000)} min or more)`);
  };
  const loadJobs = async (): Promise<void> => {
    pruneRows();
    await registry.loadAll();
    // Shared state: a job recorded but not opened here (an error, logged by loadAll) is not "no job";
    // making the demo again would collide with its update log.
    const recorded = cluster ? state.listJobs().length : 0;
    if (registry.all().length === 0 && recorded === 0 && opts.demo !== null) {
      createdDemo = true;
      await registry.create(opts.demo, demoConfig(opts.demo, opts.demoOverrides));
      log.info(`created demo job ${opts.demo}`);
    }
  };
  if (!cluster) await loadJobs();
  const adminToken = opts.ownDataDir ? adminTokenFor(opts.dataDir, opts.adminToken || undefined).token : opts.adminToken || randomBytes(18).toString('base64url');

  let workersFn: () => WorkerInfo[] = () => [];
  const workerStats = new WorkerStatsBook(clock);
  const telemetry = new TelemetryBook(clock);
  const upload = { registry, dataDir: opts.dataDir, limits: opts.limits ?? DEFAULT_LIMITS };
  let connections = (): number => 0;
  // One queue of turns for every worker event of this process (server/transport/work-turns.ts).
  const turns = new WorkTurns();
  const metrics = new FlockMetrics({ registry, workers: () => workersFn(), connections: () => connections(), waitingEvents: () => turns.depth });
  // The real handler replaces the start-up 503 before socket.io wraps the server's listeners.
  http.removeAllListeners('request');
  let credit: (workerId: string) => unknown = () => null;
  let security: () => unknown = () => null;
  const httpHandler = createHttpHandler({ registry, adminToken, clientDir: opts.clientDir, workers: () => workersFn(), workerStats, telemetry, upload, credit: (w) => credit(w), security: () => security(), metrics });
  http.on('request', cluster ? cluster.httpFront(httpHandler) : httpHandler);
  const io: FlockServer = new IoServer(http, {
    maxHttpBufferSize: opts.maxMessageBytes ?? 64 * 1024 * 1024,
    pingInterval: 10_000,
    pingTimeout: 10_000,
    perMessageDeflate: false,
  });
  // The dashboard's feed (namespace /admin, token-checked) and the worker statistics it shows.
  // With Redis the owner builds the feed on election (below) and every process checks the token.
  let adminFeed: AdminFeed | null = cluster ? null : new AdminFeed({ io, registry, workers: workerStats, telemetry, adminToken, clock, log });
  if (cluster) io.of('/admin').use(adminAuth(adminToken));
  // Spot checks hear every lease and applied push; the guard hands out their replicas.
  const spotPolicy = { ...DEFAULT_SPOT_CHECK_POLICY, ...(opts.spotCheckSameAddress ? { sameAddress: opts.spotCheckSameAddress } : {}) };
  const spotChecker = new SpotChecker(clock, (w) => guardRef?.addressOf(w) ?? w, spotPolicy, Math.random, (w) => guardRef?.verifiedIdentity(w) ?? false);
  spotChecker.shardRows = (jobId, epoch, shard) => registry.get(jobId)?.shardRows(epoch, shard) ?? null;
  spotChecker.onUnsaved = (err, n) => log.warn(`${n} spot-check trust record(s) could not be saved: ${err.message}`);
  // Trust records come from durable state: here now, or with Redis on each election (the new owner
  // reads what the last one wrote), before any handler runs.
  const restoreTrust = (): void => {
    const n = spotChecker.restore(state);
    const q = spotChecker.rows(Number.MAX_SAFE_INTEGER).filter((r) => r.quarantined !== null).length;
    if (n > 0) log.info(`spot checks: restored the trust records of ${n} worker(s), ${q} quarantined`);
  };
  if (!cluster) restoreTrust();
  const observers: TransportObserver[] = adminFeed ? [workerStats, adminFeed, spotChecker] : [workerStats, spotChecker];
  const observer: TransportObserver = {
    hello: (w, c, at) => observers.forEach((o) => o.hello?.(w, c, at)),
    joined: (w, j) => observers.forEach((o) => o.joined?.(w, j)),
    leased: (w, j, a) => observers.forEach((o) => o.leased?.(w, j, a)),
    pushed: (w, j, p, a) => observers.forEach((o) => o.pushed?.(w, j, p, a)),
    released: (w, j) => observers.forEach((o) => o.released?.(w, j)),
    left: (w, j) => observers.forEach((o) => o.left?.(w, j)),
    answered: (e, ms, outcome) => metrics.observe(e, ms, outcome),
  };
  connections = () => io.of('/').sockets.size;
  // The door first: its middleware runs before every handler; the message cap follows the jobs.
  const door = installDoor(io, doorPolicy, clock);
  // An explicit maxMessageBytes wins; otherwise the cap is sized from the largest job's gradient.
  const resize = (): void => void (opts.maxMessageBytes === undefined && door.sizeMessages(largestGradientBytes(registry.all())));
  resize();
  registry.onAdded(resize);
  const guard = new WorkerGuard(new WorkerCredentials(workerSecret), registry, clock, doorPolicy.maxLeasesPerWorker);
  guardRef = guard;
  guard.quarantine = guard.spotChecks = spotChecker;
  // A quarantined worker's gradients still waiting in a buffer never reach the weights (logged, so
  // replay agrees); async jobs have nothing waiting.
  spotChecker.onQuarantined = (w) => {
    for (const job of registry.all()) {
      try {
        job.excludeWorker(w);
      } catch (err) {
        log.warn(`job ${job.id}: could not drop the buffered gradients of quarantined worker ${w}: ${(err as Error).message}`);
      }
    }
  };
  let handlersWorkers: () => ReturnType<ReturnType<typeof attachWorkerHandlers>['workers']> = () => [];
  if (cluster) {
    // Every process relays its workers to the owner; the owner runs the handlers (cluster/relay.ts).
    await cluster.start(io, {
      loadJobs: async () => {
        await loadJobs();
        restoreTrust();
      },
      attachHandlers: (facade) => {
        adminFeed = new AdminFeed({ io: facade, registry, workers: workerStats, telemetry, adminToken, clock, log });
        observers.push(adminFeed);
        const handlers = attachWorkerHandlers(facade, registry, clock, log, observer, state, opts.scheduling ?? {}, guard, turns);
        handlersWorkers = handlers.workers;
        return { pushCombined: handlers.pushCombined, wantsGradient: handlers.wantsGradient };
      },
      stepDown: () => {
        const n = registry.unloadAll();
        log.warn(`stepped down: ${n} job runtime(s) stopped and forgotten (the new owner resumes them from Redis)`);
      },
    });
  } else {
    handlersWorkers = attachWorkerHandlers(io, registry, clock, log, observer, state, opts.scheduling ?? {}, guard, turns).workers;
  }
  credit = (w) => creditOf(spotChecker, w);
  security = () => ({
    refusals: door.refusals.snapshot(50),
    spotChecks: { ...spotChecker.counts, pending: spotChecker.pendingChecks, workers: spotChecker.rows(100) },
    messageCapBytes: door.messageCap,
    connectionsByAddress: [...door.connections()].sort((a, b) => b[1] - a[1]).slice(0, 20).map(([address, open]) => ({ address, open })),
    limits: doorPolicy,
  });
  workersFn = () => handlersWorkers().map((w) => ({ ...w, refusals: door.refusals.of(w.workerId), ...creditOf(spotChecker, w.workerId) }));
  const sampler = setInterval(() => telemetry.sample(registry.all().map((j) => j.summary())), 1000);
  sampler.unref();

  const pruner = setInterval(() => {
    if (cluster && !cluster.leading) return;
    try {
      pruneRows();
    } catch (err) {
      log.warn(`pruning worker records failed: ${(err as Error).message}`);
    }
  }, workerRows.everyMs);
  pruner.unref();

  // In turn with the worker events: a push that arrived before its lease's deadline and is still
  // waiting its turn is judged before the sweep could expire that lease.
  const sweep = setInterval(() => {
    void turns
      .run(() => {
        for (const job of registry.all()) {
          const n = job.sweep();
          if (n > 0) log.info(`job ${job.id}: ${n} lease(s) expired and will be reissued`);
        }
      })
      .catch((err: unknown) => log.warn(`lease sweep failed: ${(err as Error).message}`));
  }, opts.sweepIntervalMs ?? 1000);
  sweep.unref();

  const port = (http.address() as AddressInfo).port;
  let metricsServer: Server | null = null;
  if (opts.metricsPort !== undefined) {
    const ms = metrics.ownServer();
    await new Promise<void>((resolve, reject) => {
      ms.once('error', (err: NodeJS.ErrnoException) => reject(new StartupError(listenFailure(err, opts.host, opts.metricsPort!).replace('set PORT', 'set FLOCK_METRICS_PORT'))));
      ms.listen(opts.metricsPort, opts.host, () => resolve());
    });
    metricsServer = ms;
  }
  const url = `http://${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${port}`;
  cluster?.setAdvertisedUrl(opts.redis?.advertiseUrl ?? url);

  async function close(): Promise<void> {
    clearInterval(sweep);
    clearInterval(pruner);
    clearInterval(sampler);
    adminFeed?.close();
    io.close();
    // The disconnects io.close() queued, and any push still waiting its turn, run before the jobs stop.
    await turns.idle();
    if (metricsServer) await new Promise<void>((r) => metricsServer!.close(() => r()));
    await new Promise<void>((r) => http.close(() => r()));
    for (const job of registry.all()) {
      await job.settle();
      job.dispose();
    }
    if (cluster) await cluster.close();
    else state.close();
    lock?.release();
  }

  return {
    url,
    port,
    adminToken,
    registry,
    io,
    state,
    cluster,
    workerStats,
    door,
    guard,
    spotChecker,
    metrics,
    metricsPort: metricsServer ? (metricsServer.address() as AddressInfo).port : null,
    get createdDemo() {
      return createdDemo;
    },
    async shutdown(drainMs: number) {
      await Promise.all(registry.all().map((job) => job.drain(drainMs)));
      for (const job of registry.all()) {
        await job.settle();
        await job.checkpoint();
        const saved = job.summary().lastCheckpointVersion;
        if (saved === job.currentVersion) log.info(`job ${job.id}: checkpoint v${saved} saved`);
        else log.warn(`job ${job.id}: the final checkpoint (v${job.currentVersion}) was not saved; a restart resumes from v${saved ?? '?'} plus the update log`);
      }
      await close();
    },
    close,
  };
}

/** A worker's validated work (credit counts only results a spot check confirmed) and quarantine. */
export function creditOf(checker: SpotChecker, workerId: string): { validatedSamples: number; validatedResults: number; spotCheckFaults: number; quarantined: string | null } {
  const t = checker.trust(workerId);
  return { validatedSamples: t?.creditSamples ?? 0, validatedResults: t?.totalValidated ?? 0, spotCheckFaults: t?.faults ?? 0, quarantined: t?.quarantined ?? null };
}
