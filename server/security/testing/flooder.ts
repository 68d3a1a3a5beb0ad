// Attacker fixture (a separate process, so its own CPU does not share the coordinator's event
// loop): 4 sockets flooding lease:request and job:get as fast as they can, each from its own
// forwarded address, and 200 connections opened in a loop from one address. Prints one JSON line.
// Usage: node --import tsx flooder.ts <url> <durationMs>

import { io } from 'socket.io-client';
import { PROTOCOL_VERSION } from '../../../shared/protocol/messages.ts';

const [url, durationRaw] = process.argv.slice(2);
const durationMs = Number(durationRaw ?? 5000);
const until = Date.now() + durationMs;
const stats = { emitted: 0, refused: {} as Record<string, number>, disconnects: 0, connectsOk: 0, connectsRefused: 0 };
const noop = (r: { ok?: boolean; code?: string }): void => {
  if (r && r.ok === false && r.code) stats.refused[r.code] = (stats.refused[r.code] ?? 0) + 1;
};

async function flood(address: string): Promise<void> {
  while (Date.now() < until) {
    const s = io(url!, { transports: ['websocket'], reconnection: false, forceNew: true, extraHeaders: { 'x-forwarded-for': address } });
    const up = await new Promise<boolean>((r) => {
      s.once('connect', () => r(true));
      s.once('connect_error', () => r(false));
    });
    if (up) {
      s.emit('worker:hello', { protocol: PROTOCOL_VERSION, capabilities: { backend: 'wasm', runtime: 'node' } }, noop);
      while (s.connected && Date.now() < until) {
        for (let i = 0; i < 100; i++) {
          s.emit('lease:request', { cachedVersion: null }, noop);
          s.emit('job:get', {}, noop);
          stats.emitted += 2;
        }
        await new Promise((r) => setImmediate(r));
      }
      if (!s.connected) stats.disconnects++;
    }
    s.close();
    await new Promise((r) => setTimeout(r, 200)); // then come back
  }
}

async function connectLoop(address: string, n: number): Promise<void> {
  const open = [];
  for (let i = 0; i < n; i++) {
    const s = io(url!, { transports: ['websocket'], reconnection: false, forceNew: true, extraHeaders: { 'x-forwarded-for': address } });
    open.push(s);
    void new Promise<void>((r) => {
      s.once('connect', () => { stats.connectsOk++; r(); });
      s.once('connect_error', () => { stats.connectsRefused++; r(); });
    });
  }
  await new Promise((r) => setTimeout(r, Math.max(0, until - Date.now())));
  for (const s of open) s.close();
}

// FLOOD_NOOP=1: a control run, the process lives as long but sends nothing.
if (process.env.FLOOD_NOOP === '1') await new Promise((r) => setTimeout(r, durationMs));
else await Promise.all([flood('10.9.0.1'), flood('10.9.0.2'), flood('10.9.0.3'), flood('10.9.0.4'), connectLoop('10.9.1.1', 200)]);
process.stdout.write(JSON.stringify(stats) + '\n');
process.exit(0);
