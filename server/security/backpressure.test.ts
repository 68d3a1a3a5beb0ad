// Back-pressure: a client that stops reading its answers while it keeps asking is refused
// BACKPRESSURE once its unread answers pass the bound, instead of the coordinator queueing them
// without end. (Refusals are counted server-side: the client is not reading them.)

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { io as ioClient } from 'socket.io-client';
import { startCoordinator, type Coordinator } from '../coordinator.ts';
import { loadMnist, sliceDataset } from '../data/dataset.ts';
import { initNodeBackend } from '../../shared/training/node-backend.ts';
import { ErrorCode } from '../../shared/protocol/errors.ts';
import { PROTOCOL_VERSION } from '../../shared/protocol/messages.ts';
import type { FlockSocket } from '../../shared/training/link.ts';

let c: Coordinator;
let dataDir: string;

before(async () => {
  await initNodeBackend('wasm');
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'flock-bp-'));
  c = await startCoordinator({
    port: 0, host: '127.0.0.1', dataDir, clientDir: path.join(dataDir, 'none'), demo: 'mnist-mlp', store: 'memory',
    log: { info() {}, warn() {} }, dataset: sliceDataset(await loadMnist(), 640, 100),
    // Rates out of the way: only the queued-answers bound is under test.
    door: { maxQueuedBytesPerSocket: 256 * 1024, eventsPerSecPerSocket: 1_000_000, eventsPerSecPerIp: 1_000_000, rareEventsPer10s: 1_000_000, disconnectAfterRefusals: 1_000_000 },
  });
});

after(async () => {
  await c.close();
  await rm(dataDir, { recursive: true, force: true });
});

test('a client that does not read its answers is refused BACKPRESSURE; the coordinator stops answering it', { timeout: 30_000 }, async () => {
  const s: FlockSocket = ioClient(c.url, { transports: ['websocket'], reconnection: false, forceNew: true });
  await new Promise<void>((r) => s.once('connect', () => r()));
  const hello = await s.timeout(5000).emitWithAck('worker:hello', { protocol: PROTOCOL_VERSION, capabilities: { backend: 'wasm', runtime: 'node' } });
  assert.ok(hello.ok);
  // Stop reading: the TCP socket under the websocket is paused, so answers pile up on the coordinator.
  const tcp = (s.io.engine as unknown as { transport: { ws: { _socket: { pause(): void } } } }).transport.ws._socket;
  tcp.pause();
  const rssBefore = process.memoryUsage().rss;
  for (let i = 0; i < 20_000 && !(c.door.refusals.of(hello.workerId)[ErrorCode.Backpressure] ?? 0); i++) {
    s.emit('job:get', {}, () => undefined);
    if (i % 200 === 0) await new Promise((r) => setTimeout(r, 5));
  }
  await new Promise((r) => setTimeout(r, 500));
  const refused = c.door.refusals.of(hello.workerId)[ErrorCode.Backpressure] ?? 0;
  console.log(`# unread answers: BACKPRESSURE refusals ${refused}; RSS ${((process.memoryUsage().rss - rssBefore) / 1e6).toFixed(1)} MB`);
  assert.ok(refused > 0, 'requests were refused once the unread answers passed the bound');
  s.close();
});
