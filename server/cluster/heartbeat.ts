// Process liveness in a coordinator cluster (FLOCK_STORE=redis): what a TCP connection closing is
// to a single coordinator. Every process keeps a key P:proc:<process id> in Redis that lives one
// leader TTL (PX) and is renewed every ttl/3, and deletes it on a graceful stop. A process that is
// SIGKILLed, loses its host or stays cut off from Redis for a TTL sends no `bye` for its workers'
// sessions; its key runs out instead, and the owner (relay.ts, leader side) ends those sessions as
// the `bye`s would have, so their leases are reissued and their ids are free again.
//
// State owned: this process's heartbeat timer. The decision which gateways are gone is pure.

import type { Redis } from 'ioredis';

/** The Redis key that says process `processId` is alive. */
export const heartbeatKey = (prefix: string, processId: string): string => `${prefix}:proc:${processId}`;

export interface HeartbeatOptions {
  readonly redis: Redis;
  readonly prefix: string;
  readonly processId: string;
  /** How long the key lives without renewal (the leader TTL); renewed every ttlMs / 3. */
  readonly ttlMs: number;
  readonly log?: ((m: string) => void) | undefined;
}

/** This process's own heartbeat key. */
export class Heartbeat {
  private timer: NodeJS.Timeout | null = null;
  private failing = false;
  private readonly key: string;

  constructor(private readonly o: HeartbeatOptions) {
    this.key = heartbeatKey(o.prefix, o.processId);
  }

  /** Writes the key once (awaited: it exists before this process relays anything), then keeps it alive. */
  async start(): Promise<void> {
    await this.beat();
    this.timer = setInterval(() => {
      this.beat().then(
        () => {
          if (this.failing) this.o.log?.(`heartbeat: renewed again (${this.key})`);
          this.failing = false;
        },
        (err: Error) => {
          // Logged once per outage: the owner may end this process's sessions meanwhile; their
          // gateway (this process) then replays each worker's hello on its next request (relay.ts).
          if (!this.failing) this.o.log?.(`heartbeat: cannot renew ${this.key} (${err.message}); the owner ends this process's sessions after ${this.o.ttlMs} ms and they are replayed`);
          this.failing = true;
        },
      );
    }, Math.max(50, Math.floor(this.o.ttlMs / 3)));
    this.timer.unref();
  }

  private async beat(): Promise<void> {
    await this.o.redis.set(this.key, String(Date.now()), 'PX', this.o.ttlMs);
  }

  /** Graceful stop: the key goes at once (the owner need not wait for it to run out). */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.o.redis.del(this.key).catch(() => undefined);
  }
}

/** Which of `processIds` have their heartbeat key now (one MGET). Rejects when Redis does not answer. */
export async function aliveAmong(redis: Redis, prefix: string, processIds: readonly string[]): Promise<Set<string>> {
  if (processIds.length === 0) return new Set();
  const values = await redis.mget(...processIds.map((p) => heartbeatKey(prefix, p)));
  return new Set(processIds.filter((_, i) => values[i] !== null && values[i] !== undefined));
}

/**
 * The gateways whose sessions must end: those with sessions on the owner (`withSessions`) that are
 * not `self` (its own sockets say goodbye in-process) and have no heartbeat (`alive`).
 */
export function goneGateways(withSessions: Iterable<string>, alive: ReadonlySet<string>, self: string): string[] {
  const gone = new Set<string>();
  for (const gw of withSessions) if (gw !== self && !alive.has(gw)) gone.add(gw);
  return [...gone];
}
