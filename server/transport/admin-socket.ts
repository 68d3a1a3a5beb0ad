// The dashboard's live feed: socket.io namespace /admin, admin token checked in a middleware
// (refused before any event), `job:watch` answered with a snapshot, then throttled deltas (at most
// one per 250 ms per job, workers table at most once a second) built from cheap counters.
// Owns each job's feed cursors and throttle timers; the data belongs to the jobs and stat books.

import { safeAck } from './ack.ts';
import type { Namespace, Socket } from 'socket.io';
import { z } from 'zod';
import type { Clock } from '../../shared/clock.ts';
import { ErrorCode, fail } from '../../shared/protocol/errors.ts';
import {
  ADMIN_NAMESPACE,
  type AdminClientToServer,
  type AdminServerToClient,
  type EvalPoint,
  type JobDelta,
  type JobSnapshot,
  type LossPoint,
  type UnwatchAck,
  type WatchAck,
} from '../../shared/protocol/admin.ts';
import type { GradientPush, LeaseAck, PushAck, WorkerCapabilities } from '../../shared/protocol/messages.ts';
import { parse } from '../../shared/protocol/schemas.ts';
import { tokenMatches } from '../http/auth.ts';
import type { JobRegistry } from '../jobs/registry.ts';
import type { JobRuntime, Logger } from '../jobs/job-runtime.ts';
import { jobView } from '../jobs/job-view.ts';
import type { TelemetryBook } from '../jobs/job-telemetry.ts';
import type { WorkerStatsBook } from '../jobs/worker-stats.ts';
import type { FlockServer, TransportObserver } from './socket-handlers.ts';
import type { WorkerId } from '../leases/lease-manager.ts';
import { Throttle } from './throttle.ts';

type AdminNamespace = Namespace<AdminClientToServer, AdminServerToClient>;
type AdminSocket = Socket<AdminClientToServer, AdminServerToClient>;

export interface AdminFeedOptions {
  readonly io: FlockServer;
  readonly registry: JobRegistry;
  readonly workers: WorkerStatsBook;
  readonly telemetry: TelemetryBook;
  readonly adminToken: string;
  readonly clock: Clock;
  readonly log: Logger;
  /** Minimum time between two deltas of one job (default 250 ms: at most 4 updates/s). */
  readonly deltaIntervalMs?: number | undefined;
  /** Minimum time between two workers-table changes of one job (default 1000 ms). */
  readonly workersIntervalMs?: number | undefined;
  /** Minimum time between two jobs overviews (default 500 ms). */
  readonly overviewIntervalMs?: number | undefined;
}

interface FeedState {
  readonly throttle: Throttle;
  evalAt: number;
  lossVersion: number;
  telemetryAt: number;
  workersSeq: number;
  workersSentAt: number;
}

const WatchSchema = z.object({ jobId: z.string().min(1).max(128) });
const room = (jobId: string): string => `job:${jobId}`;

/** Evaluations after `afterAt`, scanning from the newest. */
function evalsSince(evals: readonly EvalPoint[], afterAt: number): EvalPoint[] {
  let i = evals.length;
  while (i > 0 && evals[i - 1]!.at > afterAt) i--;
  return evals.slice(i).map((e) => ({ version: e.version, at: e.at, testAccuracy: e.testAccuracy, testLoss: e.testLoss, testMae: e.testMae, testRmse: e.testRmse }));
}

/** Training-loss points above `afterVersion`, scanning from the newest. */
function lossSince(points: readonly LossPoint[], afterVersion: number): LossPoint[] {
  let i = points.length;
  while (i > 0 && points[i - 1]!.version > afterVersion) i--;
  return points.slice(i);
}

/** The /admin namespace's middleware: no event before the admin token is checked. */
export function adminAuth(adminToken: string): (socket: { handshake: { auth: unknown } }, next: (err?: Error) => void) => void {
  return (socket, next) => {
    const token = (socket.handshake.auth as { token?: unknown } | undefined)?.token;
    if (typeof token === 'string' && tokenMatches(adminToken, token)) return next();
    next(Object.assign(new Error(ErrorCode.Unauthorized), { data: { code: ErrorCode.Unauthorized, message: 'admin token required' } }));
  };
}

export class AdminFeed implements TransportObserver {
  private readonly nsp: AdminNamespace;
  private readonly feeds = new Map<string, FeedState>();
  private readonly overview: Throttle;
  private readonly deltaMs: number;
  private readonly workersMs: number;
  private readonly unsubscribers: (() => void)[] = [];
  /** close() ran: workers leaving while the server shuts down must not start a send on closed connections. */
  private closed = false;

  constructor(private readonly opts: AdminFeedOptions) {
    this.deltaMs = opts.deltaIntervalMs ?? 250;
    this.workersMs = opts.workersIntervalMs ?? 1000;
    this.nsp = opts.io.of(ADMIN_NAMESPACE) as unknown as AdminNamespace;
    this.overview = new Throttle(opts.clock, opts.overviewIntervalMs ?? 500, (eventAt) => this.emitOverview(eventAt));

    this.nsp.use(adminAuth(opts.adminToken));
    this.nsp.on('connection', (socket) => this.onConnection(socket));

    for (const job of opts.registry.all()) this.follow(job);
    this.unsubscribers.push(opts.registry.onAdded((job) => this.follow(job)));
    this.unsubscribers.push(opts.telemetry.onSample((jobId) => this.mark(jobId)));
  }

  /** Something about `jobId` changed: a delta (and an overview) will follow within the throttle. */
  mark(jobId: string): void {
    // Once closed, nothing more is sent: sockets leaving as the server closes would otherwise arm
    // timers that fire after the transport (in a cluster, the Redis adapter's connection) is gone.
    if (this.closed) return;
    const at = this.opts.clock.now();
    this.feed(jobId).throttle.mark(at);
    this.overview.mark(at);
  }

  // ---- TransportObserver: every worker event marks its job ----------------------------------

  joined(_w: WorkerId, jobId: string): void {
    this.mark(jobId);
  }
  leased(_w: WorkerId, jobId: string, _ack: LeaseAck): void {
    this.mark(jobId);
  }
  pushed(_w: WorkerId, jobId: string, _push: GradientPush, _ack: PushAck): void {
    this.mark(jobId);
  }
  released(_w: WorkerId, jobId: string): void {
    this.mark(jobId);
  }
  left(_w: WorkerId, jobId: string | undefined): void {
    if (jobId) this.mark(jobId);
  }
  hello(_w: WorkerId, _c: WorkerCapabilities, _at: number): void {}

  close(): void {
    this.closed = true;
    for (const u of this.unsubscribers) u();
    for (const f of this.feeds.values()) f.throttle.cancel();
    this.overview.cancel();
  }

  // ---- internals -----------------------------------------------------------------------------

  private follow(job: JobRuntime): void {
    this.unsubscribers.push(job.onUpdate(() => this.mark(job.id)));
    this.mark(job.id);
  }

  private feed(jobId: string): FeedState {
    let f = this.feeds.get(jobId);
    if (!f) {
      f = { throttle: new Throttle(this.opts.clock, this.deltaMs, (eventAt) => this.flush(jobId, eventAt)), evalAt: -Infinity, lossVersion: -Infinity, telemetryAt: -Infinity, workersSeq: 0, workersSentAt: -Infinity };
      this.feeds.set(jobId, f);
    }
    return f;
  }

  private onConnection(socket: AdminSocket): void {
    socket.emit('jobs:overview', this.overviewNow(this.opts.clock.now()));

    socket.on('job:watch', (raw, rawAck) => {
      const ack = safeAck<WatchAck>(rawAck);
      const msg = parse(WatchSchema, raw);
      if (!msg.ok) return ack(fail(ErrorCode.BadRequest, msg.message));
      const job = this.opts.registry.get(msg.value.jobId);
      if (!job) return ack(fail(ErrorCode.UnknownJob, `no job ${msg.value.jobId}`));
      void socket.join(room(job.id));
      ack({ ok: true, snapshot: this.snapshot(job) });
    });

    socket.on('job:unwatch', (raw, rawAck) => {
      const ack = safeAck<UnwatchAck>(rawAck);
      const msg = parse(WatchSchema, raw);
      if (!msg.ok) return ack(fail(ErrorCode.BadRequest, msg.message));
      void socket.leave(room(msg.value.jobId));
      ack({ ok: true });
    });
  }

  private snapshot(job: JobRuntime): JobSnapshot {
    const hist = job.metricHistory();
    return {
      job: jobView(job),
      evaluations: evalsSince(hist.evaluations, -Infinity),
      trainLoss: [...hist.trainLoss],
      telemetry: [...this.opts.telemetry.points(job.id)],
      staleness: [...job.stalenessHistogram()],
      workers: this.opts.workers.rows(job.id),
      sentAt: this.opts.clock.now(),
    };
  }

  private flush(jobId: string, eventAt: number): void {
    const job = this.opts.registry.get(jobId);
    const f = this.feeds.get(jobId);
    if (!job || !f) return;
    const now = this.opts.clock.now();
    const hist = job.metricHistory();
    const watchers = this.nsp.adapter.rooms.get(room(jobId))?.size ?? 0;
    if (watchers === 0) {
      // Nobody watches: skip the work; a new watcher starts from a snapshot anyway.
      f.evalAt = hist.evaluations.at(-1)?.at ?? f.evalAt;
      f.lossVersion = hist.trainLoss.at(-1)?.version ?? f.lossVersion;
      f.telemetryAt = this.opts.telemetry.points(jobId).at(-1)?.at ?? f.telemetryAt;
      f.workersSeq = this.opts.workers.cursor;
      return;
    }
    const evaluations = evalsSince(hist.evaluations, f.evalAt);
    const trainLoss = lossSince(hist.trainLoss, f.lossVersion);
    const telemetry = this.opts.telemetry.since(jobId, f.telemetryAt);
    let workers: JobDelta['workers'] = null;
    const workersDue = now - f.workersSentAt >= this.workersMs;
    if (workersDue && this.opts.workers.cursor > f.workersSeq) {
      const seq = this.opts.workers.cursor;
      workers = this.opts.workers.changes(jobId, f.workersSeq);
      f.workersSeq = seq;
      f.workersSentAt = now;
    }
    f.evalAt = evaluations.at(-1)?.at ?? f.evalAt;
    f.lossVersion = trainLoss.at(-1)?.version ?? f.lossVersion;
    f.telemetryAt = telemetry.at(-1)?.at ?? f.telemetryAt;
    const delta: JobDelta = { jobId, job: jobView(job), evaluations, trainLoss, telemetry, staleness: [...job.stalenessHistogram()], workers, eventAt, sentAt: now };
    this.nsp.to(room(jobId)).emit('job:delta', delta);
    // Worker changes held back by their slower interval still need a later delta.
    if (!workersDue && this.opts.workers.cursor > f.workersSeq) f.throttle.mark(now);
  }

  private overviewNow(eventAt: number): { jobs: ReturnType<typeof jobView>[]; eventAt: number; sentAt: number } {
    return { jobs: this.opts.registry.all().map(jobView), eventAt, sentAt: this.opts.clock.now() };
  }

  private emitOverview(eventAt: number): void {
    if (this.nsp.sockets.size === 0) return;
    this.nsp.emit('jobs:overview', this.overviewNow(eventAt));
  }
}
