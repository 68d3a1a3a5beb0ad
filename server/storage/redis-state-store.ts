// Redis StateStore (FLOCK_STORE=redis, FLOCK_REDIS_URL): the shared durable state of several
// coordinator processes. It owns an in-memory mirror (a MemoryStateStore) that answers every read
// synchronously, and writes through to Redis in order on one connection (write-behind).
//
// The acknowledgement rule "acked = durably logged" holds through durable(): it resolves once Redis
// has answered every write issued so far (the transport awaits it before acking a push), and
// rejects, for good, when one was refused. What "durable" means is Redis's AOF setting: with
// `appendonly yes` + `appendfsync always` an answered write is fsynced; with `everysec` a killed
// Redis process loses nothing answered, a power loss up to one second.
//
// Fencing: the process that owns the jobs (server/cluster/leadership.ts) sets its fencing token here;
// every write to a job's keys then runs in a Lua script that refuses it unless the token is still the
// newest one issued, so a paused former owner can never write over its successor. A refusal is told
// to `onFenced` (the cluster steps down); depose() refuses every write here, before Redis sees it,
// until resume() starts the process's next term as owner.
//
// Keys (prefix P, default "flock"): P:jobs (hash id -> JSON), P:jobids (set of ids with any data),
// P:job:<id>:upd (hash version -> JSON without gradient), P:job:<id>:grad (hash version -> bytes),
// P:job:<id>:bylease (hash lease -> version), P:job:<id>:leases (hash lease -> JSON),
// P:job:<id>:metrics (list of JSON), P:leader:fence (counter: the newest token), P:workers (hash),
// P:trust (hash worker id -> JSON spot-check record; fenced like a job's keys, so a deposed owner
// cannot write an older record, e.g. one from before a quarantine, over its successor's).

import { Redis } from 'ioredis';
import { MemoryStateStore } from './memory-state-store.ts';
import type { StateStore, StoredJob, StoredLease, StoredMetric, StoredTrust, StoredWorker, UpdateRecord } from './state-store.ts';

/** Refused because a newer owner holds the job (the fencing token in the write is stale). */
export class FencedError extends Error {
  constructor(
    message: string,
    /** The token the refused write carried (null: refused here, before Redis saw it). */
    readonly token: number | null = null,
  ) {
    super(message);
  }
}

// One script for every per-job write: KEYS[1] the job's fence counter, ARGV[1] the token ('' = not
// fenced), ARGV[2] the operation; the rest per operation.
const JOB_WRITE = `
if ARGV[1] ~= '' then
  local cur = redis.call('GET', KEYS[1])
  if cur ~= ARGV[1] then return redis.error_reply('FENCED token ' .. ARGV[1] .. ' is stale (newest ' .. tostring(cur) .. ')') end
end
local op = ARGV[2]
if op == 'append' then
  if redis.call('HEXISTS', KEYS[2], ARGV[3]) == 1 or redis.call('HEXISTS', KEYS[4], ARGV[4]) == 1 then
    return redis.error_reply('DUPLICATE update v' .. ARGV[3] .. ' / ' .. ARGV[4])
  end
  redis.call('HSET', KEYS[2], ARGV[3], ARGV[5])
  if ARGV[7] == '1' then redis.call('HSET', KEYS[3], ARGV[3], ARGV[6]) end
  redis.call('HSET', KEYS[4], ARGV[4], ARGV[3])
elseif op == 'appendmany' then
  -- Records of 5 arguments each (version, lease, meta, gradient, has-gradient): all or none.
  for i = 3, #ARGV, 5 do
    if redis.call('HEXISTS', KEYS[2], ARGV[i]) == 1 or redis.call('HEXISTS', KEYS[4], ARGV[i + 1]) == 1 then
      return redis.error_reply('DUPLICATE update v' .. ARGV[i] .. ' / ' .. ARGV[i + 1])
    end
  end
  for i = 3, #ARGV, 5 do
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 2])
    if ARGV[i + 4] == '1' then redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 3]) end
    redis.call('HSET', KEYS[4], ARGV[i + 1], ARGV[i])
  end
elseif op == 'hset' then
  redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
elseif op == 'hsetmany' then
  for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
elseif op == 'hdel' then
  for i = 3, #ARGV do redis.call('HDEL', KEYS[2], ARGV[i]) end
elseif op == 'rpush' then
  redis.call('RPUSH', KEYS[2], ARGV[3])
end
return 1
`;

type RedisWithScript = Redis & { flockJobWrite(numKeys: number, ...args: (string | Buffer)[]): Promise<number> };

export interface RedisStateStoreOptions {
  /** Key prefix; tests give each store its own. */
  readonly prefix?: string | undefined;
}

type UpdateMeta = Omit<UpdateRecord, 'gradient'>;

export class RedisStateStore implements StateStore {
  readonly kind = 'redis';
  private mirror = new MemoryStateStore();
  private readonly pending = new Set<Promise<unknown>>();
  private failure: Error | null = null;
  private fence: number | null = null;
  private closed = false;
  /** This process stepped down: writes are refused here until resume(). */
  private isDeposed = false;
  /** Told once per term when Redis refuses a write for a stale token (a newer owner exists). */
  onFenced: ((err: FencedError) => void) | null = null;

  private constructor(
    readonly redis: RedisWithScript,
    readonly prefix: string,
  ) {}

  /** Connects and loads the whole durable state into the mirror. */
  static async open(url: string, opts: RedisStateStoreOptions = {}): Promise<RedisStateStore> {
    const redis = new Redis(url, { maxRetriesPerRequest: null, lazyConnect: true }) as RedisWithScript;
    redis.defineCommand('flockJobWrite', { lua: JOB_WRITE });
    await redis.connect();
    const store = new RedisStateStore(redis, opts.prefix ?? 'flock');
    await store.reload();
    return store;
  }

  private key(...parts: string[]): string {
    return [this.prefix, ...parts].join(':');
  }
  private jobKey(jobId: string, what: string): string {
    return this.key('job', jobId, what);
  }

  /** Replaces the mirror by what Redis holds now (a takeover calls it before opening a job). */
  async reload(): Promise<void> {
    await this.durable();
    const r = this.redis;
    const fresh = new MemoryStateStore();
    const jobs = await r.hgetall(this.key('jobs'));
    for (const raw of Object.values(jobs)) fresh.putJob(JSON.parse(raw) as StoredJob);
    const ids = new Set([...(await r.smembers(this.key('jobids'))), ...Object.keys(jobs)]);
    for (const id of ids) await this.loadJob(fresh, id);
    for (const raw of Object.values(await r.hgetall(this.key('workers')))) fresh.putWorker(JSON.parse(raw) as StoredWorker);
    fresh.putTrust(Object.values(await r.hgetall(this.key('trust'))).map((raw) => JSON.parse(raw) as StoredTrust));
    this.mirror = fresh;
  }

  /** Reloads one job's update log, leases and metrics (the rest of the mirror is kept). */
  async reloadJob(jobId: string): Promise<void> {
    await this.durable();
    this.mirror.dropJob(jobId);
    await this.loadJob(this.mirror, jobId);
  }

  private async loadJob(into: MemoryStateStore, id: string): Promise<void> {
    const r = this.redis;
    const [meta, grads, leases, metrics] = await Promise.all([
      r.hgetall(this.jobKey(id, 'upd')),
      r.hgetallBuffer(this.jobKey(id, 'grad')),
      r.hgetall(this.jobKey(id, 'leases')),
      r.lrange(this.jobKey(id, 'metrics'), 0, -1),
    ]);
    const ups = Object.values(meta).map((raw) => JSON.parse(raw) as UpdateMeta).sort((a, b) => a.version - b.version);
    for (const u of ups) {
      const g = grads[String(u.version)];
      into.appendUpdate({ ...u, gradient: g ? new Uint8Array(g.buffer, g.byteOffset, g.byteLength) : null });
    }
    for (const raw of Object.values(leases)) into.putLease(JSON.parse(raw) as StoredLease);
    for (const raw of metrics) into.appendMetric(JSON.parse(raw) as StoredMetric);
  }

  // ---- fencing ----------------------------------------------------------------------------------

  /**
   * From now on this process's job writes carry `token` and are refused unless it is still the
   * newest one in P:leader:fence (leadership.ts increments it for each new owner); null: unfenced.
   */
  setFence(token: number | null): void {
    this.fence = token;
  }
  get fenceKey(): string {
    return this.key('leader', 'fence');
  }
  /** The token this process's writes carry (kept after it steps down: Redis refuses it then). */
  get fenceToken(): number | null {
    return this.fence;
  }

  /** No longer the owner: every write is refused from now on, here, until resume(). */
  depose(): void {
    this.isDeposed = true;
  }
  get deposed(): boolean {
    return this.isDeposed;
  }

  /**
   * A new term as owner with `token`: waits until Redis answered every write of an earlier term
   * (refused or not), forgets that term's refusal, and reloads the mirror from Redis.
   */
  async resume(token: number): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
    this.failure = null;
    this.fence = token;
    this.isDeposed = false;
    await this.reload();
  }

  // ---- write-behind -----------------------------------------------------------------------------

  private track(p: Promise<unknown>): void {
    if (this.failure) return;
    const token = this.fence;
    const tracked = p.then(
      () => undefined,
      (err: Error) => {
        const msg = err.message ?? String(err);
        const first = this.failure === null;
        this.failure ??= msg.includes('FENCED') ? new FencedError(msg, token) : new Error(`redis write failed: ${msg}`);
        if (first && this.failure instanceof FencedError) this.onFenced?.(this.failure);
      },
    );
    this.pending.add(tracked);
    void tracked.finally(() => this.pending.delete(tracked));
  }

  private jobWrite(jobId: string, keys: string[], op: string, ...args: (string | Buffer)[]): void {
    this.fencedWrite(keys, op, ...args);
    this.track(this.redis.sadd(this.key('jobids'), jobId));
  }

  /** One write that Redis refuses unless this process's fencing token is still the newest. */
  private fencedWrite(keys: string[], op: string, ...args: (string | Buffer)[]): void {
    this.assertWritable();
    this.track(this.redis.flockJobWrite(1 + keys.length, this.fenceKey, ...keys, this.fence === null ? '' : String(this.fence), op, ...args));
  }

  private assertWritable(): void {
    if (this.isDeposed) throw new FencedError('this process no longer owns the jobs (it stepped down); the owner writes them');
    if (this.failure) throw this.failure;
    if (this.closed) throw new Error('the Redis state store is closed');
  }

  /** Resolves once every write issued so far is answered by Redis; rejects (for good) if one was refused. */
  async durable(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
    if (this.failure) throw this.failure;
  }

  /** Writes not yet answered by Redis (metrics). */
  get pendingWrites(): number {
    return this.pending.size;
  }

  // ---- StateStore -------------------------------------------------------------------------------

  putJob(job: StoredJob): void {
    this.assertWritable();
    this.mirror.putJob(job);
    this.track(this.redis.hset(this.key('jobs'), job.id, JSON.stringify(job)));
  }
  listJobs(): StoredJob[] {
    return this.mirror.listJobs();
  }

  appendUpdate(u: UpdateRecord): void {
    this.assertWritable();
    this.mirror.appendUpdate(u); // throws on a duplicate, before anything is sent
    const { gradient, ...meta } = u;
    const g = gradient ? Buffer.from(gradient.buffer, gradient.byteOffset, gradient.byteLength) : Buffer.alloc(0);
    this.jobWrite(u.jobId, [this.jobKey(u.jobId, 'upd'), this.jobKey(u.jobId, 'grad'), this.jobKey(u.jobId, 'bylease')], 'append', String(u.version), u.leaseId, JSON.stringify(meta), g, gradient ? '1' : '0');
  }
  appendUpdates(us: readonly UpdateRecord[]): void {
    this.assertWritable();
    if (us.length === 0) return;
    const jobId = us[0]!.jobId;
    if (us.some((u) => u.jobId !== jobId)) throw new Error('appendUpdates: records of one job only');
    this.mirror.appendUpdates(us); // throws on a duplicate, before anything is sent
    const args = us.flatMap((u) => {
      const { gradient, ...meta } = u;
      const g = gradient ? Buffer.from(gradient.buffer, gradient.byteOffset, gradient.byteLength) : Buffer.alloc(0);
      return [String(u.version), u.leaseId, JSON.stringify(meta), g, gradient ? '1' : '0'];
    });
    // One script: a fence that lands first refuses all of them, never a part.
    this.jobWrite(jobId, [this.jobKey(jobId, 'upd'), this.jobKey(jobId, 'grad'), this.jobKey(jobId, 'bylease')], 'appendmany', ...args);
  }
  updateByLease(jobId: string, leaseId: string): UpdateRecord | null {
    return this.mirror.updateByLease(jobId, leaseId);
  }
  updatesAfter(jobId: string, afterVersion: number): UpdateRecord[] {
    return this.mirror.updatesAfter(jobId, afterVersion);
  }
  excludeUpdates(jobId: string, versions: readonly number[]): void {
    this.assertWritable();
    this.mirror.excludeUpdates(jobId, versions);
    if (versions.length === 0) return;
    const drop = new Set(versions);
    for (const u of this.mirror.updatesAfter(jobId, Math.min(...versions) - 1)) {
      if (!drop.has(u.version)) continue;
      const { gradient: _g, ...meta } = u;
      this.jobWrite(jobId, [this.jobKey(jobId, 'upd')], 'hset', String(u.version), JSON.stringify(meta));
    }
  }
  compactUpdates(jobId: string, upToVersion: number): void {
    this.assertWritable();
    const versions = this.mirror.updatesAfter(jobId, 0).filter((u) => u.version <= upToVersion && u.gradient !== null).map((u) => String(u.version));
    this.mirror.compactUpdates(jobId, upToVersion);
    if (versions.length > 0) this.jobWrite(jobId, [this.jobKey(jobId, 'grad')], 'hdel', ...versions);
  }
  ledger(jobId: string, epoch: number): Map<number, number> {
    return this.mirror.ledger(jobId, epoch);
  }
  lastVersion(jobId: string): number | null {
    return this.mirror.lastVersion(jobId);
  }

  putLease(l: StoredLease): void {
    this.assertWritable();
    this.mirror.putLease(l);
    this.jobWrite(l.jobId, [this.jobKey(l.jobId, 'leases')], 'hset', l.leaseId, JSON.stringify(l));
  }
  deleteLease(jobId: string, leaseId: string): void {
    this.assertWritable();
    this.mirror.deleteLease(jobId, leaseId);
    this.jobWrite(jobId, [this.jobKey(jobId, 'leases')], 'hdel', leaseId);
  }
  listLeases(jobId: string): StoredLease[] {
    return this.mirror.listLeases(jobId);
  }

  appendMetric(m: StoredMetric): void {
    this.assertWritable();
    this.mirror.appendMetric(m);
    this.jobWrite(m.jobId, [this.jobKey(m.jobId, 'metrics')], 'rpush', JSON.stringify(m));
  }
  metrics(jobId: string): StoredMetric[] {
    return this.mirror.metrics(jobId);
  }

  putWorker(w: StoredWorker): void {
    this.assertWritable();
    this.mirror.putWorker(w);
    this.track(this.redis.hset(this.key('workers'), w.workerId, JSON.stringify(w)));
  }
  getWorker(workerId: string): StoredWorker | null {
    return this.mirror.getWorker(workerId);
  }
  listWorkers(): StoredWorker[] {
    return this.mirror.listWorkers();
  }
  deleteWorkers(workerIds: readonly string[]): number {
    this.assertWritable();
    const n = this.mirror.deleteWorkers(workerIds);
    // Like putWorker, not fenced: only the owner runs the worker handlers that write these rows.
    for (let i = 0; i < workerIds.length; i += 1000) this.track(this.redis.hdel(this.key('workers'), ...workerIds.slice(i, i + 1000)));
    return n;
  }

  putTrust(records: readonly StoredTrust[]): void {
    this.assertWritable();
    if (records.length === 0) return;
    this.mirror.putTrust(records);
    this.fencedWrite([this.key('trust')], 'hsetmany', ...records.flatMap((r) => [r.workerId, JSON.stringify(r)]));
  }
  listTrust(): StoredTrust[] {
    return this.mirror.listTrust();
  }

  /** Stops accepting writes; the connection closes once the pending ones are answered. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    void this.durable()
      .catch(() => undefined)
      .finally(() => this.redis.quit().catch(() => this.redis.disconnect()));
  }
}
