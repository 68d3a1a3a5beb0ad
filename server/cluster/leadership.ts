// Leadership of the coordinator cluster (FLOCK_STORE=redis): one process at a time owns the jobs,
// elected through Redis with a lease (a key with a TTL) and a fencing token (a counter that grows
// with each new owner). The owner renews every ttl/3; a process that cannot renew before its lease
// runs out stops acting as owner, and the store refuses any write still carrying its old token
// (redis-state-store.ts checks the token on every job write), so two owners never apply updates at
// once even when one of them was paused past its lease (Kleppmann 2016).
//
// State owned here: whether this process leads, its token, the renew timer.

import type { Redis } from 'ioredis';

// KEYS[1] owner key, KEYS[2] fence counter; ARGV[1] this process, ARGV[2] ttl ms.
// Returns the new token, or the current holder when the lease is taken.
const ACQUIRE = `
local cur = redis.call('GET', KEYS[1])
if cur then return {0, cur} end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. token, 'PX', ARGV[2])
return {token, ARGV[1] .. '|' .. token}
`;
// KEYS[1] owner key, KEYS[2] fence counter; ARGV[1] 'process|token', ARGV[2] ttl ms, ARGV[3] token.
// 1 renewed, 0 lost. A lease that ran out while no one else took it (the counter still holds our
// token: no newer owner ever existed) is taken again: a long event-loop stall costs nothing then.
const RENEW = `
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not cur and redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0
`;
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

type Scripted = Redis & {
  flockAcquire(k1: string, k2: string, me: string, ttl: string): Promise<[number, string]>;
  flockRenew(k1: string, k2: string, holder: string, ttl: string, token: string): Promise<number>;
  flockRelease(k1: string, holder: string): Promise<number>;
};

export interface LeadershipOptions {
  readonly redis: Redis;
  readonly prefix: string;
  /** This process's id (unique per process start). */
  readonly processId: string;
  /** Lease length; a dead owner is replaced within about ttlMs + pollMs. */
  readonly ttlMs?: number | undefined;
  /** How often a follower tries to take the lease. */
  readonly pollMs?: number | undefined;
  /** Became owner with `token` (await: the process loads the jobs before serving). */
  readonly onElected: (token: number) => Promise<void>;
  /** Lost the lease (could not renew in time, another process holds it, or relinquish()). */
  readonly onLost: (token: number) => void;
  readonly log?: ((m: string) => void) | undefined;
}

export interface LeaderInfo {
  readonly processId: string;
  readonly token: number;
}

export function parseHolder(v: string | null): LeaderInfo | null {
  if (!v) return null;
  const i = v.lastIndexOf('|');
  return i < 0 ? null : { processId: v.slice(0, i), token: Number(v.slice(i + 1)) };
}

export class Leadership {
  private readonly r: Scripted;
  private readonly ttlMs: number;
  private readonly pollMs: number;
  private timer: NodeJS.Timeout | null = null;
  private held: { token: number; holder: string; renewedAt: number } | null = null;
  private stopped = false;
  /** The running onElected (tests and shutdown await it). */
  elected: Promise<void> = Promise.resolve();

  constructor(private readonly opts: LeadershipOptions) {
    this.r = opts.redis as Scripted;
    this.r.defineCommand('flockAcquire', { numberOfKeys: 2, lua: ACQUIRE });
    this.r.defineCommand('flockRenew', { numberOfKeys: 2, lua: RENEW });
    this.r.defineCommand('flockRelease', { numberOfKeys: 1, lua: RELEASE });
    this.ttlMs = opts.ttlMs ?? 3000;
    this.pollMs = opts.pollMs ?? 500;
  }

  get ownerKey(): string {
    return `${this.opts.prefix}:leader`;
  }
  /** The cluster-wide fencing counter (one term for all jobs). */
  get fenceKey(): string {
    return `${this.opts.prefix}:leader:fence`;
  }

  get token(): number | null {
    return this.held?.token ?? null;
  }
  get leading(): boolean {
    return this.held !== null;
  }

  /** Who leads now, as Redis says. */
  async leader(): Promise<LeaderInfo | null> {
    return parseHolder(await this.opts.redis.get(this.ownerKey));
  }

  start(): void {
    const tick = (): void => {
      if (this.stopped) return;
      void this.step().finally(() => {
        if (!this.stopped) this.timer = setTimeout(tick, this.held ? Math.max(100, Math.floor(this.ttlMs / 3)) : this.pollMs);
      });
    };
    tick();
  }

  private async step(): Promise<void> {
    if (this.held) {
      const held = this.held;
      try {
        const ok = await this.r.flockRenew(this.ownerKey, this.fenceKey, held.holder, String(this.ttlMs), String(held.token));
        if (ok === 1) {
          held.renewedAt = Date.now();
          return;
        }
        this.lose(`lease taken over`);
      } catch (err) {
        // Cannot reach Redis: stop acting as owner before the lease could have run out elsewhere.
        if (Date.now() - held.renewedAt > this.ttlMs * 0.8) this.lose(`cannot renew: ${(err as Error).message}`);
      }
      return;
    }
    try {
      const [token, holder] = await this.r.flockAcquire(this.ownerKey, this.fenceKey, this.opts.processId, String(this.ttlMs));
      if (token === 0) return;
      this.held = { token, holder, renewedAt: Date.now() };
      this.opts.log?.(`process ${this.opts.processId} now owns the jobs (fencing token ${token})`);
      // Renewal goes on while the process loads the jobs (which may take longer than the lease).
      this.elected = this.opts.onElected(token).catch((err: Error) => {
        this.opts.log?.(`taking over failed: ${err.message}; giving the lease up`);
        this.lose('take-over failed');
      });
    } catch (err) {
      this.opts.log?.(`leadership: ${(err as Error).message}`);
    }
  }

  /** Stops owning now (a write of this term was refused: another process holds a newer token). */
  relinquish(why: string): void {
    this.lose(why);
  }

  private lose(why: string): void {
    const held = this.held;
    if (!held) return;
    this.held = null;
    this.opts.log?.(`process ${this.opts.processId} lost ownership (token ${held.token}): ${why}`);
    this.opts.onLost(held.token);
    void this.r.flockRelease(this.ownerKey, held.holder).catch(() => 0);
  }

  /** Stops renewing; `release` hands the lease over at once (graceful shutdown). */
  async stop(release: boolean): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    const held = this.held;
    this.held = null;
    if (release && held) await this.r.flockRelease(this.ownerKey, held.holder).catch(() => 0);
  }
}
