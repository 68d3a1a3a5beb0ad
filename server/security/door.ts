// The door: every connection and every worker event passes here before a handler sees it.
// Per-address connection cap and connection rate (checked at the engine.io handshake, before a
// socket exists), per-connection and per-address event rates (rate-limiter-flexible), refusal of
// requests from a connection whose answers are not being read, the transport's message cap, and
// the count of every refusal per worker. Owns the limiters and the per-address connection counts.

import type { IncomingMessage } from 'node:http';
import { RateLimiterMemory, type RateLimiterRes } from 'rate-limiter-flexible';
import { ErrorCode, fail } from '../../shared/protocol/errors.ts';
import type { Clock } from '../../shared/clock.ts';
import type { FlockServer } from '../transport/socket-handlers.ts';
import { clientAddress } from './client-address.ts';
import { messageCapFor, type DoorPolicy } from './limits.ts';
import { RefusalCounts } from './refusal-book.ts';

/** Events a worker may send; anything else is refused (and counted) without reaching a handler. */
const WORKER_EVENTS: ReadonlySet<string> = new Set(['worker:hello', 'job:get', 'lease:request', 'gradient:push', 'lease:release', 'job:refuse']);
const RARE_EVENTS: ReadonlySet<string> = new Set(['worker:hello', 'job:get', 'job:refuse']);

interface EngineSocketLike {
  readonly request: IncomingMessage;
  readonly writeBuffer?: unknown[];
  readonly transport?: { socket?: { bufferedAmount?: number } };
  once(ev: 'close', cb: () => void): void;
}

export interface Door {
  readonly refusals: RefusalCounts;
  /** The address a request is counted under (FLOCK_TRUST_PROXY applied). */
  addressOf(req: IncomingMessage): string;
  /** Open connections per address right now (the dashboard; tests). */
  connections(): Map<string, number>;
  /** Sets the transport cap from the largest gradient any job can send (call when jobs are added). */
  sizeMessages(largestGradientBytes: number): number;
  readonly messageCap: number;
  /** Counts a refusal given outside the door (handlers); `who` a worker id or `address <ip>`. */
  count(who: string, code: string): void;
}

export function installDoor(io: FlockServer, policy: DoorPolicy, clock: Clock): Door {
  const refusals = new RefusalCounts();
  const open = new Map<string, number>();
  const connectRate = new RateLimiterMemory({ points: policy.connectsPerMinutePerIp, duration: 60 });
  const perSocket = new RateLimiterMemory({ points: policy.eventsPerSecPerSocket, duration: 1 });
  const perIp = new RateLimiterMemory({ points: policy.eventsPerSecPerIp, duration: 1 });
  const rare = new RateLimiterMemory({ points: policy.rareEventsPer10s, duration: 10 });
  const addressOf = (req: IncomingMessage): string => clientAddress(req.socket?.remoteAddress, req.headers['x-forwarded-for'], policy.trustProxy);
  const count = (who: string, code: string): void => refusals.count(who, code, clock.now());
  let messageCap = io.engine.opts.maxHttpBufferSize ?? 1e6;

  // ---- connections: refused at the handshake (HTTP 403), before any socket or buffer exists ----
  const previous = io.engine.opts.allowRequest;
  io.engine.opts.allowRequest = (req, cb) => {
    const ip = addressOf(req);
    if ((open.get(ip) ?? 0) >= policy.maxConnectionsPerIp) {
      count(`address ${ip}`, ErrorCode.RateLimited);
      return cb(`${ErrorCode.RateLimited}: ${policy.maxConnectionsPerIp} connections from ${ip} are open (FLOCK_MAX_CONNECTIONS_PER_IP)`, false);
    }
    connectRate.consume(ip).then(
      () => (previous ? previous(req, cb) : cb(null, true)),
      () => {
        count(`address ${ip}`, ErrorCode.RateLimited);
        cb(`${ErrorCode.RateLimited}: too many new connections from ${ip}; wait a minute`, false);
      },
    );
  };
  io.engine.on('connection', (conn: EngineSocketLike) => {
    const ip = addressOf(conn.request);
    open.set(ip, (open.get(ip) ?? 0) + 1);
    conn.once('close', () => {
      const n = (open.get(ip) ?? 1) - 1;
      if (n <= 0) open.delete(ip);
      else open.set(ip, n);
    });
  });

  // ---- events ----
  io.use((socket, next) => {
    socket.data.address = addressOf(socket.request);
    next();
  });
  io.on('connection', (socket) => {
    const ip = socket.data.address ?? addressOf(socket.request);
    let windowStart = clock.now();
    let strikes = 0;
    const who = (): string => socket.data.workerId ?? `address ${ip}`;
    const queuedBytes = (): number => {
      const conn = socket.conn as unknown as EngineSocketLike;
      return (conn.transport?.socket?.bufferedAmount ?? 0) + (conn.writeBuffer?.length ?? 0) * 1024;
    };
    socket.use((packet, next) => {
      const event = String(packet[0]);
      const last = packet[packet.length - 1];
      const ack = typeof last === 'function' ? (last as (res: unknown) => void) : undefined;
      const refuse = (code: ErrorCode, message: string, retryAfterMs?: number): void => {
        count(who(), code);
        const now = clock.now();
        if (now - windowStart > 10_000) {
          windowStart = now;
          strikes = 0;
        }
        if (++strikes > policy.disconnectAfterRefusals) {
          if (socket.connected) {
            // It ignores the refusals: close it, and its address may not reconnect for a while.
            count(who(), 'DISCONNECTED');
            void connectRate.block(ip, policy.floodBlockSec);
            socket.disconnect(true);
          }
          return;
        }
        ack?.(fail(code, message, retryAfterMs));
      };
      if (!WORKER_EVENTS.has(event)) return refuse(ErrorCode.BadRequest, `unknown event ${event.slice(0, 40)}`);
      if (queuedBytes() > policy.maxQueuedBytesPerSocket) return refuse(ErrorCode.Backpressure, 'answers are queued unread on this connection; read them first', 1000);
      const checks: Promise<RateLimiterRes>[] = [perSocket.consume(socket.id), perIp.consume(ip)];
      if (RARE_EVENTS.has(event)) checks.push(rare.consume(`${socket.id}:${event}`));
      Promise.all(checks).then(
        () => {
          // Counts the handler's refusals too, per worker, whatever the handler.
          if (ack) {
            packet[packet.length - 1] = (res: unknown) => {
              const r = res as { ok?: unknown; code?: unknown } | null;
              if (r && r.ok === false && typeof r.code === 'string') count(who(), r.code);
              ack(res);
            };
          }
          next();
        },
        (rej: unknown) => {
          const wait = (rej as RateLimiterRes | undefined)?.msBeforeNext;
          refuse(ErrorCode.RateLimited, `too many requests from this ${rej === undefined ? 'client' : 'connection or address'}; slow down`, Math.max(50, Math.min(10_000, wait ?? 1000)));
        },
      );
    });
  });

  return {
    refusals,
    addressOf,
    connections: () => new Map(open),
    count,
    get messageCap() {
      return messageCap;
    },
    sizeMessages(largestGradientBytes: number): number {
      messageCap = messageCapFor(largestGradientBytes);
      io.engine.opts.maxHttpBufferSize = messageCap;
      // ws reads its option at each upgrade: new websocket connections get the new cap.
      const ws = (io.engine as unknown as { ws?: { options?: { maxPayload?: number } } }).ws;
      if (ws?.options) ws.options.maxPayload = messageCap;
      return messageCap;
    },
  };
}
