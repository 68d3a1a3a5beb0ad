// A coordinator's membership in a cluster on Redis (FLOCK_STORE=redis): opens the shared state and
// checkpoint stores, plugs socket.io's Redis adapter in (job updates and dashboard broadcasts reach
// every process's sockets), relays its workers to the leader (relay.ts) and runs for leadership
// (leadership.ts). On election it loads the jobs from durable state only (Redis: update log,
// leases, checkpoints, jobs' own data), creates the demo job if the cluster has none (so it is made
// once), and only then serves the workers of every process. An owner that loses its lease (or has a
// write refused for a stale fencing token) steps down in place: it stops its job runtimes without
// writing anything more, forgets the jobs and the sessions it served, and goes on as a gateway; its
// own volunteers stay connected and are relayed to the new owner. Elected again, it loads the jobs
// afresh from Redis.
//
// Liveness: the process keeps a heartbeat key in Redis (heartbeat.ts; PX one leader TTL, renewed
// every ttl/3, deleted on close) from before it relays anything; as owner, its relay checks the
// keys of the gateways with sessions on it every ttl/2 and ends the sessions of a gateway that died
// without a `bye`, so their workers' leases are reissued within about 1.5 x the TTL.
//
// State owned: the Redis connections, the heartbeat, the cached leader id, whether the handlers are
// attached and whether this process serves the jobs now.

import { randomBytes } from 'node:crypto';
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { hostname } from 'node:os';
import { Redis } from 'ioredis';
import { createAdapter } from '@socket.io/redis-adapter';
import type { Server as IoServer } from 'socket.io';
import { FencedError, RedisStateStore } from '../storage/redis-state-store.ts';
import { RedisCheckpointStore } from '../storage/redis-checkpoint-store.ts';
import { RedisJobData } from '../storage/redis-job-data.ts';
import type { Checkpoints } from '../storage/checkpoint-store.ts';
import { Leadership, parseHolder } from './leadership.ts';
import { Relay, type CombinedHandler } from './relay.ts';
import { Heartbeat, aliveAmong } from './heartbeat.ts';
import type { FlockServer } from '../transport/socket-handlers.ts';
import type { Logger } from '../jobs/job-runtime.ts';

export interface ClusterOptions {
  readonly url: string;
  readonly prefix: string;
  readonly leaderTtlMs: number;
  /** Gateway pre-aggregation interval for `buffered` + `mean` jobs (pre-aggregator.ts); 0 or absent: off. */
  readonly preAggregateMs?: number | undefined;
  readonly log: Logger;
  /** Chunk size of a job's own data in Redis (redis-job-data.ts; tests make it small). */
  readonly dataChunkBytes?: number | undefined;
}

export interface ClusterHooks {
  /** Load the jobs from durable state and create the demo if the cluster has none. */
  readonly loadJobs: () => Promise<void>;
  /** Attach the worker handlers and the dashboard feed to the relay's facade (once, after the first loadJobs). */
  readonly attachHandlers: (io: FlockServer) => { pushCombined?: CombinedHandler; wantsGradient?: (leaseId: string) => boolean } | void;
  /** Ownership lost: stop and forget every job without writing (the state store refuses writes already). */
  readonly stepDown: () => void;
}

export class Cluster {
  readonly processId = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  private readonly conns: Redis[] = [];
  private leaderId: string | null = null;
  private leaderUrl: string | null = null;
  private ownUrl: string | null = null;
  private leaderConn: Redis | null = null;
  private poll: NodeJS.Timeout | null = null;
  private statsTimer: NodeJS.Timeout | null = null;
  private relay: Relay | null = null;
  private heartbeat: Heartbeat | null = null;
  private leadership: Leadership | null = null;
  /** Whether this process serves the jobs now (elected and loaded, not stepped down since). */
  private serving = false;
  /** When this process last became leader, and how long loading took (ms). */
  electedAt: number | null = null;
  takeoverMs: number | null = null;

  private constructor(
    readonly state: RedisStateStore,
    private readonly o: ClusterOptions,
  ) {}

  static async open(o: ClusterOptions): Promise<Cluster> {
    const state = await RedisStateStore.open(o.url, { prefix: o.prefix });
    return new Cluster(state, o);
  }

  private conn(): Redis {
    const r = new Redis(this.o.url, { maxRetriesPerRequest: null });
    r.on('error', (err: Error) => this.o.log.warn(`redis: ${err.message}`));
    this.conns.push(r);
    return r;
  }

  /** Checkpoint stores in Redis, fenced by this process's leadership token. */
  checkpoints(): (jobId: string, kind: 'rotation' | 'best', keep: number) => Checkpoints {
    const redis = this.state.redis;
    // The state store's token, kept after stepping down (Redis then refuses it), never "unfenced".
    const fence = (): { key: string; token: number | null } => {
      if (this.state.deposed) throw new FencedError('this process no longer owns the jobs (it stepped down)');
      return { key: this.state.fenceKey, token: this.state.fenceToken };
    };
    return (jobId, kind, keep) =>
      new RedisCheckpointStore({ redis, prefix: this.o.prefix, jobId, kind, keep, fence, onFenced: (e) => this.refused(e), warn: (m) => this.o.log.warn(m) });
  }

  /** A write was refused for a stale token: if it was this term's, another process owns the jobs. */
  private refused(err: FencedError): void {
    // A refusal of an earlier term's write (answered only now) says nothing about this term.
    if (err.token !== null && err.token === this.leadership?.token) this.leadership.relinquish(`a write was refused (${err.message})`);
  }

  /** Jobs' own data sets in Redis (on a connection of their own: big chunks do not hold up the log). */
  jobData(): RedisJobData {
    return new RedisJobData({ redis: this.conn(), prefix: this.o.prefix, chunkBytes: this.o.dataChunkBytes });
  }

  get leading(): boolean {
    return this.leadership?.leading ?? false;
  }
  get leader(): string | null {
    return this.leaderId;
  }

  async start(io: IoServer, hooks: ClusterHooks): Promise<void> {
    io.adapter(createAdapter(this.conn(), this.conn(), { key: `${this.o.prefix}:sio` }));
    const leaderConn = this.conn();
    const ttl = this.o.leaderTtlMs;
    this.heartbeat = new Heartbeat({ redis: leaderConn, prefix: this.o.prefix, processId: this.processId, ttlMs: ttl, log: (m) => this.o.log.warn(m) });
    const pub = this.conn();
    const relay = new Relay({
      processId: this.processId,
      prefix: this.o.prefix,
      pub,
      sub: this.conn(),
      leader: () => this.leaderId,
      preAggregateMs: this.o.preAggregateMs,
      liveness: { alive: (ids) => aliveAmong(pub, this.o.prefix, ids), everyMs: Math.floor(ttl / 2), ttlMs: ttl },
      log: (m) => this.o.log.warn(m),
    });
    this.relay = relay;
    // No await before this: socket.io accepts sockets from the moment it is attached to the bound
    // port, and one whose 'connection' passed before the relay listened would stay connected with
    // no one answering it. The relay hears them now and forwards what they ask once this process is
    // alive in Redis (the owner ends the sessions of a gateway without a heartbeat) and subscribed.
    await relay.start(io, this.heartbeat.start());
    let attached = false;
    this.leaderConn = leaderConn;
    this.state.onFenced = (err) => this.refused(err);
    const refresh = async (): Promise<void> => {
      const [holder, url] = await leaderConn.mget(`${this.o.prefix}:leader`, `${this.o.prefix}:leader:url`);
      this.leaderUrl = url ?? null;
      const now = parseHolder(holder ?? null)?.processId ?? null;
      // Only the leader itself says it leads, once it has loaded the jobs (see onElected) and until
      // it steps down (the lease key may still name it for a moment after that).
      const effective = now === this.processId && !this.serving ? null : now;
      if (effective !== this.leaderId) {
        this.leaderId = effective;
        relay.leaderChanged();
      }
    };
    this.poll = setInterval(() => void refresh().catch(() => undefined), 200);
    this.poll.unref();
    let shown = '';
    this.statsTimer = setInterval(() => {
      const pre = relay.pre?.stats;
      const combined = pre ? `; pre-aggregation: ${pre.combined} combined update(s) of ${pre.combinedGradients} gradient(s), ${pre.individual} gradient(s) forwarded alone` : '';
      const served = relay.served;
      const owner = served.pushes + served.combined > 0 ? `; as owner: ${served.pushes} push(es) and ${served.combined} combined update(s) of ${served.combinedGradients} gradient(s) from other processes` : '';
      const line = `relay: ${relay.stats.weightsFromCache} lease(s) served weights from this process's cache, ${relay.stats.weightsRelayed} got them from the owner${combined}${owner}`;
      if (line !== shown) this.o.log.info(line);
      shown = line;
    }, 30_000);
    this.statsTimer.unref();
    this.leadership = new Leadership({
      redis: leaderConn,
      prefix: this.o.prefix,
      processId: this.processId,
      ttlMs: this.o.leaderTtlMs,
      pollMs: Math.max(100, Math.floor(this.o.leaderTtlMs / 6)),
      log: (m) => this.o.log.info(m),
      onElected: async (token) => {
        const t0 = Date.now();
        const holds = (): boolean => this.leadership?.token === token;
        // A new term: writes carry `token`; the mirror and the jobs come fresh from Redis.
        await this.state.resume(token);
        if (!holds()) return;
        await hooks.loadJobs();
        if (!holds()) {
          // Lost while loading (onLost already stepped down): drop what loaded since.
          hooks.stepDown();
          return;
        }
        if (!attached) {
          // What the handlers and the dashboard feed see of socket.io on the owner: connections are
          // the relay's sessions from every process; broadcasts go out through the Redis adapter.
          // Watchers live on other processes too, so the feed always sends (rooms/sockets never 0).
          const admin = io.of('/admin');
          const adminFacade = {
            use: () => undefined,
            on: (_ev: 'connection', fn: (s: unknown) => void) => relay.setConnectionHandler('/admin', fn as never),
            to: (room: string) => admin.to(room),
            emit: (ev: string, ...args: unknown[]) => (admin.emit as (ev: string, ...a: unknown[]) => boolean)(ev, ...args),
            adapter: { rooms: { get: () => ({ size: 1 }) } },
            sockets: { size: 1 },
          };
          const facade = {
            on: (_ev: 'connection', fn: (s: unknown) => void) => relay.setConnectionHandler('/', fn as never),
            to: (room: string) => io.to(room),
            of: (nsp: string) => (nsp === '/admin' ? adminFacade : { sockets: new Map(relay.virtual) }),
          };
          const attachedHandlers = hooks.attachHandlers(facade as unknown as FlockServer);
          if (attachedHandlers?.pushCombined) relay.setCombinedHandler(attachedHandlers.pushCombined);
          if (attachedHandlers?.wantsGradient) relay.setGradientWanted(attachedHandlers.wantsGradient);
          attached = true;
        }
        if (this.ownUrl) await leaderConn.set(`${this.o.prefix}:leader:url`, this.ownUrl);
        if (!holds()) {
          hooks.stepDown();
          return;
        }
        this.serving = true;
        this.electedAt = Date.now();
        this.takeoverMs = this.electedAt - t0;
        this.leaderId = this.processId;
        relay.leaderChanged();
        this.o.log.info(`cluster: process ${this.processId} serves the jobs (loaded from Redis in ${this.takeoverMs} ms, fencing token ${token})`);
      },
      onLost: (token) => {
        // Synchronous, in this order: writes refused here first, then nothing waits on this
        // process, then the jobs and the sessions served go. Workers keep their connections.
        this.state.depose();
        this.serving = false;
        if (this.leaderId === this.processId) this.leaderId = null;
        relay.leaderChanged();
        hooks.stepDown();
        const sessions = relay.dropServed();
        this.o.log.warn(`cluster: process ${this.processId} lost ownership (token ${token}) and stepped down: its job runtimes stopped without writing, ${sessions} session(s) it served end there; it relays its own workers to the next owner`);
      },
    });
    this.leadership.start();
  }

  /** Where other processes reach this one's HTTP API (FLOCK_ADVERTISE_URL, else its own URL). */
  setAdvertisedUrl(url: string): void {
    this.ownUrl = url;
    if (this.leading) void this.leaderConn?.set(`${this.o.prefix}:leader:url`, url).catch(() => undefined);
  }

  /**
   * The HTTP API of the cluster: a process that does not own the jobs passes /api/* requests to the
   * owner (they read and change the jobs it holds); pages and assets are served locally.
   */
  httpFront(local: (req: IncomingMessage, res: ServerResponse) => void): (req: IncomingMessage, res: ServerResponse) => void {
    return (req, res) => {
      const to = this.leaderUrl;
      if (this.leading || !req.url?.startsWith('/api/') || req.url === '/api/health' || to === this.ownUrl) return local(req, res);
      if (!to) {
        // Before an owner is known this process has no jobs: "no job" would be a wrong answer.
        res.writeHead(503, { 'Content-Type': 'text/plain', 'Retry-After': '1' });
        res.end('no coordinator owns the jobs yet (election in progress); retry\n');
        return;
      }
      const out = httpRequest(new URL(req.url, to), { method: req.method, headers: req.headers }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      out.on('error', (err) => {
        if (!res.headersSent) res.writeHead(503, { 'Content-Type': 'text/plain', 'Retry-After': '2' });
        res.end(`the coordinator owning the jobs is not reachable (${err.message}); retry\n`);
      });
      req.pipe(out);
    };
  }

  /** Graceful stop: hand the lease over at once (followers take over within their poll time). */
  async close(): Promise<void> {
    if (this.poll) clearInterval(this.poll);
    if (this.statsTimer) clearInterval(this.statsTimer);
    this.relay?.close();
    await this.heartbeat?.stop();
    await this.leadership?.stop(true);
    await this.state.durable().catch(() => undefined);
    this.state.close();
    for (const c of this.conns) c.disconnect();
  }
}
