// The worker relay of a coordinator cluster (FLOCK_STORE=redis). Every process accepts volunteer
// connections (gateway side) and forwards each worker event, payload and ack, to the process that
// owns the jobs (leader side), where the unchanged worker handlers (transport/socket-handlers.ts)
// run against a "virtual socket" standing for the real one. Room joins travel back, so the
// leader's job:update broadcasts reach the real sockets through socket.io's Redis adapter. The
// dashboard's /admin feed is relayed the same way (its snapshots and overviews come back as emits).
//
// Requests go over Redis pub/sub to P:rpc:<leader>, answers to P:reply:<gateway>, room changes to
// P:ctl:<gateway> (v8-serialized: binary gradients travel as bytes). When this process leads, its
// own sockets skip Redis. A request in flight when the leader changes is answered with a transient
// error (the worker retries); the update log decides what was applied, so nothing is doubled. A new
// leader knows no session: the gateway replays the worker's hello and job choice, then the request.
//
// A gateway that dies without a word (SIGKILL, a lost host) sends no `bye`: the leader checks the
// heartbeat keys (heartbeat.ts) of the gateways that have sessions on it every ttl/2 and ends every
// session of one whose key ran out, as its `bye`s would have (the handlers hear 'disconnect' and
// reissue the workers' leases). A gateway that was only cut off from Redis for a while is treated
// the same: its next request is answered noSession and it replays the hello as after an owner
// change; a push on a lease released meanwhile is refused (unknown lease), never applied twice.
//
// State owned: gateway side the real sockets' sessions and pending requests; leader side the
// virtual sockets by (gateway, socket id) and the liveness timer.

import { serialize, deserialize } from 'node:v8';
import type { Redis } from 'ioredis';
import type { Server as IoServer, Socket } from 'socket.io';
import { ErrorCode } from '../../shared/protocol/errors.ts';
import type { LeaseAck, LeaseRequest, WeightsPayload } from '../../shared/protocol/messages.ts';
import type { SocketData } from '../transport/socket-handlers.ts';
import { decodeVector, tensorSizes } from '../../shared/codec/compression.ts';
import { toBytes } from '../../shared/codec/tensor-codec.ts';
import type { JobDescriptor } from '../../shared/protocol/messages.ts';
import type { JobConfig } from '../jobs/job-config.ts';
import { aggregationOf } from '../aggregation/aggregation-config.ts';
import { PreAggregator, type CombinedAnswer, type GatewayJob, type WireCombined } from './pre-aggregator.ts';
import { goneGateways } from './heartbeat.ts';

/** The namespaces relayed: volunteers ('/') and the dashboard's live feed ('/admin'). */
export type Nsp = '/' | '/admin';
/** The client events a gateway forwards, per namespace; '$connect' opens a session on the owner. */
export const RELAYED: Record<Nsp, readonly string[]> = {
  '/': ['worker:hello', 'job:get', 'lease:request', 'gradient:push', 'lease:release', 'job:refuse'],
  '/admin': ['job:watch', 'job:unwatch'],
};
/** The event that opens a session on the owner (a worker's hello; a dashboard's connection). */
const OPENS: Record<Nsp, string> = { '/': 'worker:hello', '/admin': '$connect' };

type Rpc =
  | { kind: 'req'; gw: string; nsp: Nsp; sid: string; seq: number; ev: string; raw: unknown; addr?: string | undefined }
  | { kind: 'combined'; gw: string; seq: number; c: WireCombined }
  | { kind: 'bye'; gw: string; nsp: Nsp; sid: string };
interface Session {
  readonly socket: Socket;
  readonly nsp: Nsp;
  hello?: unknown;
  jobGet?: unknown;
  /** The job of this worker's last lease (whose cached weights may serve its next one). */
  jobId?: string;
}
/** `checked`: the lease this answer grants is held for a spot check (its gradient must reach the owner). */
type Reply = { kind: 'res'; seq: number; res: unknown; noSession?: boolean; checked?: string };
type Ctl = { kind: 'join' | 'leave'; nsp: Nsp; sid: string; room: string } | { kind: 'emit'; nsp: Nsp; sid: string; ev: string; args: unknown[] };

export interface RelayOptions {
  readonly processId: string;
  readonly prefix: string;
  /** Publishing connection. */
  readonly pub: Redis;
  /** A dedicated connection (it enters subscriber mode). */
  readonly sub: Redis;
  /** The leader's process id now (cached by the caller), or null when none is elected. */
  readonly leader: () => string | null;
  /** Forwarded requests unanswered after this long get a transient error. */
  readonly timeoutMs?: number | undefined;
  /**
   * Gateway side: how long a `buffered` + `mean` job's gradients are held to be combined into one
   * update for the owner (pre-aggregator.ts); 0 forwards every gradient individually.
   */
  readonly preAggregateMs?: number | undefined;
  /**
   * Leader side: gateway liveness (cluster.ts passes heartbeat.ts's keys). Every `everyMs`, while
   * this process leads, the gateways with sessions here are looked up with `alive`; the sessions of
   * those without a heartbeat (for `ttlMs`) end. Absent: sessions end only on a gateway's `bye`.
   */
  readonly liveness?: { readonly alive: (processIds: readonly string[]) => Promise<ReadonlySet<string>>; readonly everyMs: number; readonly ttlMs: number } | undefined;
  readonly log?: ((m: string) => void) | undefined;
}

/** Int8 deltas the gateway cache may be rebuilt through before whole weights again (as a worker: worker-loop.ts). */
const MAX_DELTA_CHAIN = 16;

const transient = (message: string) => ({ ok: false, code: ErrorCode.Internal, message, retryAfterMs: 500 });

/** One lease of a combined update on the owner: the session that pushed it and what it said. */
export interface CombinedEntry {
  readonly data: Record<string, unknown>;
  readonly leaseId: string;
  readonly baseVersion: number;
  readonly numSamples: number;
  readonly loss: number | null;
  readonly norm: number;
  /** This lease's own gradient (float32), sent along because a spot check holds the lease. */
  readonly gradient?: Uint8Array | undefined;
}
/** The owner's handler of combined updates (transport/socket-handlers.ts: pushCombined). */
export type CombinedHandler = (jobId: string, baseVersion: number, entries: readonly (CombinedEntry | null)[], sum: Uint8Array) => Promise<CombinedAnswer>;

/**
 * The hello a session is replayed with on an owner that does not know it: the worker's own, with
 * the id and credential the owner issued in its answer (the worker adopts them: worker-loop.ts), so
 * the replayed session is the same worker, and a push it retries is recognised ('duplicate') rather
 * than refused as another worker's. A first hello claims a self-chosen id with no credential.
 */
export function helloToReplay(raw: unknown, res: unknown): unknown {
  const r = res as { ok?: unknown; workerId?: unknown; credential?: unknown } | null;
  if (raw === null || typeof raw !== 'object' || !r || r.ok !== true || typeof r.workerId !== 'string' || typeof r.credential !== 'string') return raw;
  return { ...(raw as Record<string, unknown>), workerId: r.workerId, credential: r.credential };
}

/** What the handlers on the owner see of a socket: client events dispatched in, emits and room changes sent back. */
export class VirtualSocket {
  readonly data: Record<string, unknown> = {};
  private readonly handlers = new Map<string, ((...args: unknown[]) => void)[]>();
  constructor(
    readonly id: string,
    /** The process holding the real socket. */
    readonly gateway: string,
    private readonly nsp: Nsp,
    private readonly sid: string,
    private readonly ctl: (c: Ctl) => void,
  ) {}
  on(ev: string, fn: (...args: unknown[]) => void): this {
    this.handlers.set(ev, [...(this.handlers.get(ev) ?? []), fn]);
    return this;
  }
  /** A client event (or 'disconnect') reaching the handlers. */
  dispatch(ev: string, ...args: unknown[]): void {
    for (const fn of this.handlers.get(ev) ?? []) fn(...args);
  }
  /** Server -> this client. */
  emit(ev: string, ...args: unknown[]): boolean {
    this.ctl({ kind: 'emit', nsp: this.nsp, sid: this.sid, ev, args });
    return true;
  }
  join(room: string): void {
    this.ctl({ kind: 'join', nsp: this.nsp, sid: this.sid, room });
  }
  leave(room: string): void {
    this.ctl({ kind: 'leave', nsp: this.nsp, sid: this.sid, room });
  }
}

export class Relay {
  private readonly timeoutMs: number;
  private seq = 0;
  /** Gateway side: requests awaiting the leader's answer. */
  private readonly pending = new Map<number, { leader: string; done: (res: unknown, noSession?: boolean) => void; timer: NodeJS.Timeout }>();
  /** Gateway side: real sockets, with what re-creates their session on a new leader. */
  private readonly real = new Map<string, Session>();
  /** Gateway side: the newest weights seen per job; a worker's lease at that version is served from here. */
  private readonly weights = new Map<string, WeightsPayload>();
  /** Gateway side: how many int8 deltas each cached entry was rebuilt through since whole weights came. */
  private readonly deltaChain = new Map<string, number>();
  /** Leases whose weights came from this process's cache / crossed Redis from the owner. */
  readonly stats = { weightsFromCache: 0, weightsRelayed: 0 };
  /** Leader side: gradient messages served from other processes: single pushes, combined updates and the gradients these carried. */
  readonly served = { pushes: 0, combined: 0, combinedGradients: 0 };
  /** Gateway side: sums its workers' gradients for `buffered` + `mean` jobs (null: off). */
  readonly pre: PreAggregator | null;
  private readonly jobInfo = new Map<string, { at: number; job: Promise<GatewayJob | null> }>();
  private onCombined: CombinedHandler | null = null;
  private wantsGradient: ((leaseId: string) => boolean) | null = null;
  /** Leader side: virtual sockets by `${gateway}${namespace}${socket id}`, per namespace. */
  private readonly virtualByNsp: Record<Nsp, Map<string, VirtualSocket>> = { '/': new Map(), '/admin': new Map() };
  private readonly onConnection: Record<Nsp, ((s: VirtualSocket) => void) | null> = { '/': null, '/admin': null };
  /** Leader side: the periodic gateway liveness check (null: none), and whether one is under way. */
  private livenessTimer: NodeJS.Timeout | null = null;
  private checking = false;
  /** Resolves once this process can relay: its channels subscribed and start()'s `alive` done. */
  private ready: Promise<void> = Promise.resolve();
  /** Leader side: the last lookup failed (its warning is given once per outage). */
  private lookupFailing = false;

  constructor(private readonly o: RelayOptions) {
    this.timeoutMs = o.timeoutMs ?? 10_000;
    const ms = o.preAggregateMs ?? 0;
    this.pre =
      ms > 0
        ? new PreAggregator({
            intervalMs: ms,
            job: (jobId) => this.gatewayJob(jobId),
            send: (c) => this.callCombined(c),
            individually: (sid, raw) => this.forward('/', sid, 'gradient:push', raw),
            log: o.log,
          })
        : null;
  }

  /** A job's config as the shared store holds it (cached 5 s, so live settings reach the gateway). */
  private gatewayJob(jobId: string): Promise<GatewayJob | null> {
    const hit = this.jobInfo.get(jobId);
    if (hit && Date.now() - hit.at < 5000) return hit.job;
    const job = this.o.pub.hget(`${this.o.prefix}:jobs`, jobId).then((raw) => {
      if (!raw) return null;
      const config = (JSON.parse(raw) as { config: JobConfig }).config;
      return { aggregation: aggregationOf(config), maxGradNorm: config.maxGradNorm, staleness: config.staleness };
    });
    const entry = { at: Date.now(), job };
    void job.then((j) => {
      if (!j && this.jobInfo.get(jobId) === entry) this.jobInfo.delete(jobId);
    }, () => this.jobInfo.delete(jobId));
    this.jobInfo.set(jobId, entry);
    return job;
  }

  /** Leader side: where combined updates go (the worker handlers' pushCombined). */
  setCombinedHandler(fn: CombinedHandler): void {
    this.onCombined = fn;
  }

  /** Leader side: which leases a spot check holds (their gateways send their gradients along with a combined update). */
  setGradientWanted(fn: (leaseId: string) => boolean): void {
    this.wantsGradient = fn;
  }

  private chan(kind: 'rpc' | 'reply' | 'ctl', pid: string): string {
    return `${this.o.prefix}:relay:${kind}:${pid}`;
  }

  /**
   * Listens to `io`'s sockets at once, before anything is awaited: socket.io accepts a socket as soon
   * as it is attached to a listening server, and a socket whose 'connection' went unheard stays
   * connected with nothing answering its events (its worker's hello times out, again and again, for
   * as long as the connection lasts). Their requests are held until the relay is ready: its Redis
   * channels subscribed and `alive` resolved (cluster.ts: the heartbeat written, so the owner does
   * not take the first session for one of a dead gateway). Resolves then.
   */
  start(io: IoServer, alive: Promise<unknown> = Promise.resolve()): Promise<void> {
    const me = this.o.processId;
    io.on('connection', (socket) => this.accept(socket, '/'));
    io.of('/admin').on('connection', (socket) => this.accept(socket, '/admin'));
    this.o.sub.on('messageBuffer', (channel: Buffer, message: Buffer) => {
      const ch = channel.toString();
      const msg = deserialize(message) as Rpc | Reply | Ctl;
      if (ch === this.chan('rpc', me)) this.serve(msg as Rpc);
      else if (ch === this.chan('reply', me)) this.answered(msg as Reply);
      else this.control(msg as Ctl);
    });
    this.ready = Promise.all([this.o.sub.subscribe(this.chan('rpc', me), this.chan('reply', me), this.chan('ctl', me)), alive]).then(() => undefined);
    const live = this.o.liveness;
    if (live) {
      this.livenessTimer = setInterval(() => void this.checkGateways(), Math.max(50, live.everyMs));
      this.livenessTimer.unref();
    }
    return this.ready;
  }

  /** Whether the relay may send now; false (and logged) when its start failed. */
  private async readyToSend(): Promise<boolean> {
    try {
      await this.ready;
      return true;
    } catch (err) {
      this.o.log?.(`relay: not connected to the cluster (${(err as Error).message})`);
      return false;
    }
  }

  /** Stops the liveness check (the connections are the caller's). */
  close(): void {
    if (this.livenessTimer) clearInterval(this.livenessTimer);
    this.livenessTimer = null;
  }

  /** Leader side: the handlers attach here (as they would to io.of(nsp).on('connection')). */
  setConnectionHandler(nsp: Nsp, fn: (s: VirtualSocket) => void): void {
    this.onConnection[nsp] = fn;
  }

  /** Leader side: the worker sessions it serves (the /api/workers list). */
  get virtual(): Map<string, VirtualSocket> {
    return this.virtualByNsp['/'];
  }

  /**
   * Leader side: this process stopped owning the jobs. Every session it served ends here (its
   * handlers hear 'disconnect' and forget the worker); the real sockets, wherever they are, stay
   * connected, and their gateways replay hello on the next owner. A later term starts with none.
   */
  dropServed(): number {
    let n = 0;
    for (const sockets of Object.values(this.virtualByNsp)) {
      const all = [...sockets.values()];
      sockets.clear();
      for (const v of all) {
        n++;
        try {
          v.dispatch('disconnect', 'server namespace disconnect');
        } catch (err) {
          this.o.log?.(`relay: ending a session after stepping down: ${(err as Error).message}`);
        }
      }
    }
    return n;
  }

  /** Leader side: the other processes whose sockets have sessions here. */
  gatewaysServed(): string[] {
    const gws = new Set<string>();
    for (const sockets of Object.values(this.virtualByNsp)) for (const v of sockets.values()) if (v.gateway !== this.o.processId) gws.add(v.gateway);
    return [...gws];
  }

  /**
   * Leader side: one liveness round. The gateways with sessions here whose heartbeat is gone have
   * their sessions ended. Nothing ends when Redis does not answer (this process cannot tell then),
   * or when this process stopped leading meanwhile (dropServed ended them all already).
   *
   * Not covered: a worker whose gateway died before a takeover. The new owner restores its leases
   * from Redis (with their deadlines) but never had a session for it, so nothing here ends them:
   * they are reissued at their deadlines (JobRuntime.sweep), and until then that worker, claiming
   * its id again, may be told TOO_MANY_LEASES for leases it no longer has in hand (worker-guard.ts).
   * Accepted: it takes an owner and a gateway dying within one lease deadline.
   */
  async checkGateways(): Promise<number> {
    const live = this.o.liveness;
    const me = this.o.processId;
    if (!live || this.checking || this.o.leader() !== me) return 0;
    const gws = this.gatewaysServed();
    if (gws.length === 0) return 0;
    this.checking = true;
    let alive: ReadonlySet<string>;
    try {
      alive = await live.alive(gws);
      this.lookupFailing = false;
    } catch (err) {
      if (!this.lookupFailing) this.o.log?.(`relay: cannot check the gateways' heartbeats (${(err as Error).message}); none ended`);
      this.lookupFailing = true;
      return 0;
    } finally {
      this.checking = false;
    }
    if (this.o.leader() !== me) return 0;
    let ended = 0;
    for (const gw of goneGateways(gws, alive, me)) {
      const n = this.endGateway(gw);
      ended += n;
      if (n > 0) this.o.log?.(`relay: gateway ${gw} is gone (no heartbeat for ${live.ttlMs} ms); ${n} session(s) ended, their leases reissued`);
    }
    return ended;
  }

  /** Leader side: every session of gateway `gw` ends, as its `bye`s would end them. Returns how many. */
  endGateway(gw: string): number {
    let n = 0;
    for (const sockets of Object.values(this.virtualByNsp)) {
      for (const [key, v] of [...sockets]) {
        if (v.gateway !== gw) continue;
        sockets.delete(key);
        n++;
        try {
          v.dispatch('disconnect', 'ping timeout');
        } catch (err) {
          this.o.log?.(`relay: ending a session of gone gateway ${gw}: ${(err as Error).message}`);
        }
      }
    }
    return n;
  }

  /** A new leader elsewhere: fail what waits on the old one, so the workers retry there. */
  leaderChanged(): void {
    const now = this.o.leader();
    for (const [seq, p] of this.pending) {
      if (p.leader === now) continue;
      clearTimeout(p.timer);
      this.pending.delete(seq);
      p.done(transient('the coordinator owning this job changed; retry'));
    }
  }

  // ---- gateway side -------------------------------------------------------------------------------

  private accept(socket: Socket, nsp: Nsp): void {
    const key = `${nsp}${socket.id}`;
    const entry: Session = { socket, nsp };
    this.real.set(key, entry);
    for (const ev of RELAYED[nsp]) {
      socket.on(ev, (raw: unknown, ack: unknown) => {
        if (ev === 'worker:hello') entry.hello = raw;
        if (ev === 'job:get') entry.jobGet = raw;
        const answer =
          ev === 'lease:request'
            ? this.leaseViaCache(entry, socket.id, raw)
            : ev === 'gradient:push' && this.pre && this.o.leader() !== this.o.processId
              ? this.pre.push(socket.id, entry.jobId, raw)
              : this.forward(nsp, socket.id, ev, raw);
        if (ev === 'worker:hello') void answer.then((res) => (entry.hello = helloToReplay(raw, res)));
        if (ev === 'job:get' && this.pre) {
          void answer.then((res) => {
            const r = res as { ok?: boolean; job?: JobDescriptor } | null;
            if (r?.ok && r.job) this.pre?.learnSpecs(r.job.id, r.job.trainableSpecs);
          });
        }
        void answer.then((res) => {
          if (typeof ack === 'function') (ack as (r: unknown) => void)(res);
        });
      });
    }
    // A dashboard's session starts at once (the owner sends it the jobs overview).
    if (nsp === '/admin') void this.forward(nsp, socket.id, '$connect', null);
    socket.on('disconnect', () => {
      this.real.delete(key);
      // After the requests this socket made while the relay was starting (they wait on the same promise).
      void this.readyToSend().then((ok) => {
        const leader = this.o.leader();
        if (ok && leader) this.send(leader, { kind: 'bye', gw: this.o.processId, nsp, sid: socket.id });
      });
    });
  }

  /**
   * A lease request, answered with this process's cached weights where they are current: the owner
   * is told the worker holds the cached version, so it sends weights only when a newer version
   * exists (each version crosses Redis about once per process, not once per lease).
   *
   * The owner may answer with an int8 delta (`deltaFrom`, server/aggregation/wire.ts) against the
   * version the request named. The cache only ever holds whole weights: a delta against the
   * worker's own version passes through untouched (the worker applies it), and a delta against the
   * substituted (cached) version is applied here, to the cached weights, exactly as a worker would.
   * Serving a delta as if it were whole weights made every worker refuse it, hand the lease back
   * and ask again, forever (no shard got done).
   */
  private async leaseViaCache(entry: Session, sid: string, raw: unknown): Promise<unknown> {
    const req = raw as Partial<LeaseRequest> | null;
    const jobId = (typeof req?.jobId === 'string' ? req.jobId : undefined) ?? entry.jobId;
    const cached = jobId ? this.weights.get(jobId) : undefined;
    const held = req !== null && typeof req === 'object' && typeof req.cachedVersion === 'number' ? req.cachedVersion : null;
    // Only for a worker holding an older version (or none): one holding the cached one or newer asks as it is.
    const substitute = cached !== undefined && req !== null && typeof req === 'object' && (held === null || held < cached.version);
    const res = (await this.forward('/', sid, 'lease:request', substitute ? { ...req, cachedVersion: cached.version } : raw)) as LeaseAck;
    if (!res || typeof res !== 'object' || !res.ok) return res;
    entry.jobId = res.lease.jobId;
    this.pre?.learnVersion(res.lease.jobId, res.lease.baseVersion);
    if (res.weights) {
      this.stats.weightsRelayed++;
      if (res.weights.deltaFrom !== undefined && !substitute) return res; // against the worker's own version
      const whole = res.weights.deltaFrom === undefined ? res.weights : substitute && res.lease.jobId === jobId ? this.applyDelta(res.lease.jobId, cached, res.weights) : null;
      if (!whole) {
        // Not usable by this worker (another job's delta, or one that does not fit): ask again without the cache.
        if (jobId) this.weights.delete(jobId);
        void this.forward('/', sid, 'lease:release', { leaseId: res.lease.leaseId });
        return transient('the weights changed while leasing; retry');
      }
      const prev = this.weights.get(res.lease.jobId);
      if (!prev || prev.version <= whole.version) {
        this.weights.set(res.lease.jobId, whole);
        if (whole === res.weights) this.deltaChain.set(res.lease.jobId, 0);
      }
      return whole === res.weights ? res : { ...res, weights: whole };
    }
    if (!substitute) return res; // the worker holds this version itself
    if (res.lease.jobId === jobId && res.lease.baseVersion === cached.version) {
      this.stats.weightsFromCache++;
      return { ...res, weights: cached };
    }
    // Granted on another job than the cache was for: hand the lease back, let the worker ask again.
    void this.forward('/', sid, 'lease:release', { leaseId: res.lease.leaseId });
    return transient('the job changed while leasing; retry');
  }

  /**
   * Whole float32 weights: the cached whole `base` plus an int8 `delta` from its version, or null
   * when they do not fit. Rounding adds up like a worker's chain of deltas, so after
   * MAX_DELTA_CHAIN of them the entry is dropped and whole weights are fetched again.
   */
  private applyDelta(jobId: string, base: WeightsPayload, delta: WeightsPayload): WeightsPayload | null {
    const chain = (this.deltaChain.get(jobId) ?? 0) + 1;
    if (delta.deltaFrom !== base.version || chain > MAX_DELTA_CHAIN) return null;
    const sizes = tensorSizes(delta.specs);
    const from = decodeVector(base.encoding ?? 'f32', toBytes(base.data), sizes);
    const diff = decodeVector('int8', toBytes(delta.data), sizes);
    if (!from.ok || !diff.ok || from.values.length !== diff.values.length) return null;
    const sum = Float32Array.from(from.values);
    for (let i = 0; i < sum.length; i++) sum[i]! += diff.values[i]!;
    this.deltaChain.set(jobId, chain);
    return { version: delta.version, specs: delta.specs, data: new Uint8Array(sum.buffer) };
  }

  private async forward(nsp: Nsp, sid: string, ev: string, raw: unknown, replayed = false): Promise<unknown> {
    const r = await this.call(nsp, sid, ev, raw);
    if (!r.noSession || replayed) return r.res;
    // The owner does not know this session (it took over since): replay its opening, then retry.
    const entry = this.real.get(`${nsp}${sid}`);
    if (nsp === '/admin') await this.call(nsp, sid, '$connect', null);
    else {
      if (entry?.hello !== undefined && ev !== 'worker:hello') await this.call(nsp, sid, 'worker:hello', entry.hello);
      if (entry?.jobGet !== undefined && ev !== 'job:get' && ev !== 'worker:hello') await this.call(nsp, sid, 'job:get', entry.jobGet);
    }
    return this.forward(nsp, sid, ev, raw, true);
  }

  private async call(nsp: Nsp, sid: string, ev: string, raw: unknown): Promise<{ res: unknown; noSession?: boolean }> {
    if (!(await this.readyToSend())) return { res: transient('this coordinator is not connected to the cluster; retry') };
    const leader = this.o.leader();
    if (!leader) return Promise.resolve({ res: transient('no coordinator owns the jobs yet (election in progress); retry') });
    const seq = ++this.seq;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(seq);
        resolve({ res: transient('the coordinator owning this job did not answer; retry') });
      }, this.timeoutMs);
      this.pending.set(seq, { leader, timer, done: (res, noSession) => resolve({ res, noSession }) });
      // The client's address as the door saw it: the owner's guard counts the worker under it.
      const addr = this.real.get(`${nsp}${sid}`)?.socket.data.address;
      this.send(leader, { kind: 'req', gw: this.o.processId, nsp, sid, seq, ev, raw, addr: typeof addr === 'string' ? addr : undefined });
    });
  }

  /** A combined update to the owner; a lost or failed round trip answers with an error (then pushed one by one). */
  private async callCombined(c: WireCombined): Promise<CombinedAnswer> {
    if (!(await this.readyToSend())) return { ok: false, error: 'not connected to the cluster' };
    const leader = this.o.leader();
    if (!leader) return Promise.resolve({ ok: false, error: 'no coordinator owns the jobs' });
    const seq = ++this.seq;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(seq);
        resolve({ ok: false, error: 'the owner did not answer' });
      }, this.timeoutMs);
      this.pending.set(seq, {
        leader,
        timer,
        done: (res) => {
          const r = res as CombinedAnswer | { ok: false; message?: string } | null;
          resolve(r && typeof r === 'object' && ('acks' in r || 'individually' in r) ? (r as CombinedAnswer) : { ok: false, error: (r as { message?: string } | null)?.message ?? 'refused' });
        },
      });
      this.send(leader, { kind: 'combined', gw: this.o.processId, seq, c });
    });
  }

  private answered(r: Reply): void {
    if (r.checked !== undefined) this.pre?.mustCarry(r.checked);
    const p = this.pending.get(r.seq);
    if (!p) return;
    clearTimeout(p.timer);
    this.pending.delete(r.seq);
    p.done(r.res, r.noSession);
  }

  private control(c: Ctl): void {
    const s = this.real.get(`${c.nsp}${c.sid}`)?.socket;
    if (!s) return;
    if (c.kind === 'emit') (s.emit as (ev: string, ...args: unknown[]) => boolean)(c.ev, ...c.args);
    else if (c.kind === 'join') void s.join(c.room);
    else void s.leave(c.room);
  }

  private send(pid: string, msg: Rpc): void {
    if (pid === this.o.processId) {
      // This process leads: no Redis round trip (still asynchronous, like the remote path).
      queueMicrotask(() => this.serve(msg));
      return;
    }
    void this.o.pub.publish(this.chan('rpc', pid), serialize(msg)).catch((err: Error) => this.o.log?.(`relay: ${err.message}`));
  }

  // ---- leader side --------------------------------------------------------------------------------

  private serve(m: Rpc): void {
    if (m.kind === 'combined') return this.serveCombined(m, (res) => this.reply(m.gw, { kind: 'res', seq: m.seq, res }));
    const key = `${m.gw}${m.nsp}${m.sid}`;
    const sockets = this.virtualByNsp[m.nsp];
    if (m.kind === 'bye') {
      const v = sockets.get(key);
      sockets.delete(key);
      v?.dispatch('disconnect', 'transport close');
      return;
    }
    const reply = (res: unknown, noSession = false): void => this.reply(m.gw, { kind: 'res', seq: m.seq, res, noSession });
    if (m.ev === 'gradient:push' && m.gw !== this.o.processId) this.served.pushes++;
    const onConnection = this.onConnection[m.nsp];
    if (!onConnection || this.o.leader() !== this.o.processId) return reply(transient('this coordinator does not own the jobs (any more); retry'));
    let v = sockets.get(key);
    if (!v) {
      if (m.ev !== OPENS[m.nsp]) return reply(null, true);
      v = new VirtualSocket(key, m.gw, m.nsp, m.sid, (c) => this.ctlTo(m.gw, c));
      // The door ran on the gateway, on the real socket: its client address (FLOCK_TRUST_PROXY applied)
      // is what the guard, spot checks and poison-shard counting see here, not 'unknown' for everyone.
      if (m.addr !== undefined) v.data.address = m.addr;
      sockets.set(key, v);
      onConnection(v);
    }
    if (m.ev === '$connect') return reply({ ok: true });
    if (m.ev === 'lease:request' && this.wantsGradient) {
      // The spot checker hears of the lease right after its ack (a TransportObserver): ask after that.
      const wants = this.wantsGradient;
      v.dispatch(m.ev, m.raw, (res: unknown) =>
        queueMicrotask(() => {
          const lease = (res as { ok?: boolean; lease?: { leaseId?: string } } | null)?.lease?.leaseId;
          const checked = lease !== undefined && wants(lease) ? lease : undefined;
          this.reply(m.gw, { kind: 'res', seq: m.seq, res, ...(checked !== undefined ? { checked } : {}) });
        }),
      );
      return;
    }
    v.dispatch(m.ev, m.raw, (res: unknown) => reply(res));
  }

  private serveCombined(m: Extract<Rpc, { kind: 'combined' }>, reply: (res: unknown) => void): void {
    const handler = this.onCombined;
    if (!handler || this.o.leader() !== this.o.processId) return reply(transient('this coordinator does not own the jobs (any more); retry'));
    if (m.gw !== this.o.processId) {
      this.served.combined++;
      this.served.combinedGradients += m.c.leases.length;
    }
    const sockets = this.virtualByNsp['/'];
    // A lease whose session this owner does not know (it took over since) is pushed alone: the gateway replays the hello.
    const entries = m.c.leases.map((l) => {
      const v = sockets.get(`${m.gw}/${l.sid}`);
      return v ? { data: v.data, leaseId: l.leaseId, baseVersion: l.baseVersion, numSamples: l.numSamples, loss: l.loss, norm: l.norm, gradient: l.gradient } : null;
    });
    handler(m.c.jobId, m.c.baseVersion, entries, m.c.sum).then(reply, (err: Error) => {
      this.o.log?.(`relay: a combined update failed: ${err.message}`);
      reply({ ok: false, error: err.message });
    });
  }

  private reply(gw: string, r: Reply): void {
    if (gw === this.o.processId) {
      queueMicrotask(() => this.answered(r));
      return;
    }
    void this.o.pub.publish(this.chan('reply', gw), serialize(r)).catch((err: Error) => this.o.log?.(`relay: ${err.message}`));
  }

  private ctlTo(gw: string, c: Ctl): void {
    if (gw === this.o.processId) return this.control(c);
    void this.o.pub.publish(this.chan('ctl', gw), serialize(c)).catch(() => undefined);
  }
}
