// The door's limits (rate, connections, leases, message size) as data, with their defaults. Pure:
// settings.ts reads them from the environment, door.ts enforces them.

import type { TrustProxy } from './client-address.ts';

export interface DoorPolicy {
  /** Open connections from one client address (FLOCK_MAX_CONNECTIONS_PER_IP; a lab behind one NAT raises it). */
  readonly maxConnectionsPerIp: number;
  /** New connections from one address per minute (FLOCK_CONNECT_RATE_PER_IP). */
  readonly connectsPerMinutePerIp: number;
  /** Events per second on one connection (FLOCK_EVENT_RATE_PER_SOCKET). */
  readonly eventsPerSecPerSocket: number;
  /** Events per second from one address, all its connections together (FLOCK_EVENT_RATE_PER_IP). */
  readonly eventsPerSecPerIp: number;
  /** worker:hello, job:get and job:refuse per 10 s on one connection (they cost more and are rare). */
  readonly rareEventsPer10s: number;
  /** A connection refused this often within 10 s is closed (it ignores the refusals). */
  readonly disconnectAfterRefusals: number;
  /** ...and its address may not open a new connection for this long (seconds). */
  readonly floodBlockSec: number;
  /** Outgoing bytes queued on a connection (a client that does not read) above which its requests are refused. */
  readonly maxQueuedBytesPerSocket: number;
  /** Leases one worker may hold at once, all jobs together: one, plus one prefetched (FLOCK_MAX_LEASES_PER_WORKER). */
  readonly maxLeasesPerWorker: number;
  readonly trustProxy: TrustProxy;
}

export const DEFAULT_DOOR_POLICY: DoorPolicy = {
  maxConnectionsPerIp: 16,
  connectsPerMinutePerIp: 120,
  // A fast honest worker sends about two events per lease (request + push): ~100 leases/s fits.
  eventsPerSecPerSocket: 200,
  eventsPerSecPerIp: 800,
  rareEventsPer10s: 30,
  disconnectAfterRefusals: 100,
  floodBlockSec: 10,
  maxQueuedBytesPerSocket: 32 * 1024 * 1024,
  maxLeasesPerWorker: 2,
  trustProxy: { kind: 'off' },
};

/** Transport message cap floor: socket.io's own default (1 MB) is plenty for control messages. */
export const MIN_MESSAGE_BYTES = 1024 * 1024;

/**
 * The largest client->server message the transport reads: the largest job's gradient (float32,
 * the largest thing a worker sends) with 50% margin for its envelope and specs, plus 256 KiB.
 * Anything bigger is cut off by engine.io/ws before it is buffered.
 */
export function messageCapFor(largestGradientBytes: number): number {
  return Math.max(MIN_MESSAGE_BYTES, Math.ceil(largestGradientBytes * 1.5) + 256 * 1024);
}
