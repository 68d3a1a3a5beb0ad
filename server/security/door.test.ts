// The door against a real coordinator (port 0): client addresses through X-Forwarded-For only from
// a trusted proxy, connection cap per address, event rate limits, the lease allowance, the message
// cap, server-issued credentials (forged ones get a new id), and fresh-id hellos writing nothing.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { io as ioClient } from 'socket.io-client';
import { startCoordinator, type Coordinator } from '../coordinator.ts';
import { aggregationFor } from '../aggregation/aggregation-config.ts';
import { loadMnist, sliceDataset, type Dataset } from '../data/dataset.ts';
import { initNodeBackend } from '../../shared/training/node-backend.ts';
import { ErrorCode } from '../../shared/protocol/errors.ts';
import { PROTOCOL_VERSION, type LeaseAck } from '../../shared/protocol/messages.ts';
import type { FlockSocket } from '../../shared/training/link.ts';
import { clientAddress, parseTrustProxy } from './client-address.ts';
import { WorkerCredentials } from './credentials.ts';
import { messageCapFor } from './limits.ts';
import { randomBytes } from 'node:crypto';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';

let c: Coordinator;
let dataDir: string;
const sockets: FlockSocket[] = [];
const caps = { backend: 'wasm', runtime: 'node' } as const;

before(async () => {
  await initNodeBackend('wasm');
  const dataset: Dataset = sliceDataset(await loadMnist(), 640, 100);
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'flock-door-'));
  c = await startCoordinator({
    port: 0, host: '127.0.0.1', dataDir, clientDir: path.join(dataDir, 'none'), demo: 'mnist-mlp',
    // Plain async aggregation: the lease-allowance test reads 'applied' and one version per push
    // (the demos' default, buffered x6, would answer 'buffered' and step every 6th push).
    demoOverrides: { batchSize: 64, stop: { maxEpochs: 1000, targetAccuracy: null }, evalEveryVersions: 1_000_000, aggregation: aggregationFor({ mode: 'async' }) },
    log: { info() {}, warn() {} }, dataset,
    door: { trustProxy: { kind: 'loopback' }, maxConnectionsPerIp: 8, eventsPerSecPerSocket: 100, rareEventsPer10s: 1_000_000, connectsPerMinutePerIp: 1_000_000 },
  });
});

after(async () => {
  for (const s of sockets) s.close();
  await c.close();
  await rm(dataDir, { recursive: true, force: true });
});

async function connect(from?: string): Promise<FlockSocket> {
  const s: FlockSocket = ioClient(c.url, { transports: ['websocket'], reconnection: false, forceNew: true, ...(from ? { extraHeaders: { 'x-forwarded-for': from } } : {}) });
  sockets.push(s);
  await new Promise<void>((resolve, reject) => {
    s.once('connect', () => resolve());
    s.once('connect_error', reject);
  });
  return s;
}

const hello = (s: FlockSocket, extra: { workerId?: string; credential?: string } = {}) =>
  s.timeout(5000).emitWithAck('worker:hello', { protocol: PROTOCOL_VERSION, ...extra, capabilities: caps });

test('client address: X-Forwarded-For only from a trusted proxy; the right-most untrusted hop', () => {
  const off = parseTrustProxy(undefined);
  const lo = parseTrustProxy('1');
  const list = parseTrustProxy('10.0.0.2');
  assert.ok(off.ok && lo.ok && list.ok);
  assert.equal(clientAddress('::ffff:127.0.0.1', '6.6.6.6', off.value), '127.0.0.1', 'no proxy trusted: the header is ignored');
  assert.equal(clientAddress('127.0.0.1', '6.6.6.6', lo.value), '6.6.6.6');
  assert.equal(clientAddress('127.0.0.1', '1.1.1.1, 6.6.6.6', lo.value), '6.6.6.6', 'the client wrote 1.1.1.1 itself');
  assert.equal(clientAddress('192.168.1.5', '6.6.6.6', lo.value), '192.168.1.5', 'not from loopback: ignored');
  assert.equal(clientAddress('10.0.0.2', '7.7.7.7', list.value), '7.7.7.7');
  assert.equal(clientAddress('10.0.0.9', '7.7.7.7', list.value), '10.0.0.9');
  assert.equal(clientAddress('127.0.0.1', 'not an address', lo.value), '127.0.0.1');
});

test('credentials: an HMAC over id and issue time; a forged, swapped or altered one does not verify', () => {
  const cr = new WorkerCredentials(randomBytes(32));
  const good = cr.issue('w-abc12345', 1_700_000_000_000);
  assert.ok(cr.verify('w-abc12345', good));
  assert.equal(cr.verify('w-other123', good), false);
  const k = good.length - 10; // a middle character (the last one carries padding bits)
  assert.equal(cr.verify('w-abc12345', good.slice(0, k) + (good[k] === 'A' ? 'B' : 'A') + good.slice(k + 1)), false);
  assert.equal(cr.verify('w-abc12345', new WorkerCredentials(randomBytes(32)).issue('w-abc12345', 1_700_000_000_000)), false);
  assert.equal(cr.verify('w-abc12345', undefined), false);
  assert.equal(cr.verify('w-abc12345', 'v1.zz.' + 'A'.repeat(43)), false);
});

test('hello: a new worker gets a server-issued id and credential; the credential keeps the id; a forged one or an id in use gets a new id', async () => {
  const a = await connect();
  const first = await hello(a, { workerId: 'chosen-by-me-01' });
  assert.ok(first.ok && first.credential);
  assert.notEqual(first.workerId, 'chosen-by-me-01', 'an id without its credential is not taken');
  a.close();
  await new Promise((r) => setTimeout(r, 100));
  const back = await hello(await connect(), { workerId: first.workerId, credential: first.credential });
  assert.ok(back.ok && back.workerId === first.workerId, 'its credential keeps the id');
  const thief = await hello(await connect(), { workerId: first.workerId, credential: first.credential });
  assert.ok(thief.ok && thief.workerId !== first.workerId, 'an id in use on a live connection is not shared');
  const forged = await hello(await connect(), { workerId: 'victim-0001', credential: 'v1.abc.' + 'x'.repeat(43) });
  assert.ok(forged.ok && forged.workerId !== 'victim-0001');
});

test('lease allowance: a worker holds at most one lease plus one prefetched; another worker\'s lease and a replayed push are refused, nothing applied', async () => {
  const job = c.registry.all()[0]!;
  const s = await connect();
  const me = await hello(s);
  assert.ok(me.ok);
  const l1 = (await s.timeout(5000).emitWithAck('lease:request', { cachedVersion: null })) as LeaseAck;
  const l2 = (await s.timeout(5000).emitWithAck('lease:request', { cachedVersion: null })) as LeaseAck;
  const l3 = (await s.timeout(5000).emitWithAck('lease:request', { cachedVersion: null })) as LeaseAck;
  assert.ok(l1.ok && l2.ok);
  assert.ok(!l3.ok && l3.code === ErrorCode.TooManyLeases, JSON.stringify(l3).slice(0, 200));

  const other = await connect();
  assert.ok((await hello(other)).ok);
  const specs = job.descriptor().trainableSpecs;
  const bytes = specs.reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1) * 4, 0);
  const push = { leaseId: l1.lease.leaseId, baseVersion: l1.lease.baseVersion, numSamples: l1.lease.numSamples, loss: 1, computeMs: 1, specs, data: new ArrayBuffer(bytes) };
  const v0 = job.currentVersion;
  const stolen = await other.timeout(5000).emitWithAck('gradient:push', push);
  assert.ok(!stolen.ok && stolen.code === ErrorCode.UnknownLease || !stolen.ok && stolen.code === ErrorCode.LeaseNotYours, JSON.stringify(stolen));
  assert.equal(job.currentVersion, v0, 'nothing applied');
  const mine = await s.timeout(5000).emitWithAck('gradient:push', push);
  assert.ok(mine.ok && mine.status === 'applied');
  const replay = await s.timeout(5000).emitWithAck('gradient:push', push);
  assert.ok(replay.ok && replay.status === 'duplicate');
  assert.equal(job.currentVersion, v0 + 1, 'the replay is not applied again');
  const l4 = (await s.timeout(5000).emitWithAck('lease:request', { cachedVersion: null })) as LeaseAck;
  assert.ok(l4.ok, 'after a push the allowance is free again');
  const refused = c.door.refusals.of(me.workerId);
  assert.equal(refused[ErrorCode.TooManyLeases], 1, 'the refusal is counted for the worker');
});

test('connection cap per address: the 9th connection from one forwarded address is refused at the handshake; other addresses still connect', async () => {
  const from = '203.0.113.7';
  const opened: FlockSocket[] = [];
  for (let i = 0; i < 8; i++) opened.push(await connect(from));
  await assert.rejects(connect(from), /RATE_LIMITED|403|Forbidden|websocket error/i);
  const elsewhere = await connect('203.0.113.8');
  assert.ok(elsewhere.connected);
  assert.equal(c.door.connections().get(from), 8);
  for (const s of opened) s.close();
});

test('event rate per connection: a flood of job:get is refused with RATE_LIMITED within a second, then the connection is closed', async () => {
  const s = await connect('198.51.100.1');
  assert.ok((await hello(s)).ok);
  const started = Date.now();
  let firstRefusalMs = -1;
  const acks: Promise<unknown>[] = [];
  for (let i = 0; i < 400; i++) {
    acks.push(s.timeout(3000).emitWithAck('job:get', {}).then((r) => {
      if (!r.ok && r.code === ErrorCode.RateLimited && firstRefusalMs < 0) firstRefusalMs = Date.now() - started;
    }, () => undefined));
  }
  await Promise.all(acks);
  assert.ok(firstRefusalMs >= 0 && firstRefusalMs < 1000, `first refusal after ${firstRefusalMs} ms`);
  assert.ok((c.door.refusals.snapshot().totals[ErrorCode.RateLimited] ?? 0) >= 100);
});

test('message cap: sized from the largest gradient; a payload twice the cap is cut off at the transport (RSS grows < 50 MB)', async () => {
  const job = c.registry.all()[0]!;
  const gradBytes = job.descriptor().trainableSpecs.reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1) * 4, 0);
  assert.equal(c.door.messageCap, messageCapFor(gradBytes));
  assert.ok(c.door.messageCap < 4 * 1024 * 1024, `cap ${c.door.messageCap}`);
  const rss0 = process.memoryUsage().rss;
  const big = new ArrayBuffer(c.door.messageCap * 2);
  for (let i = 0; i < 5; i++) {
    const s = await connect(`192.0.2.${i + 1}`);
    assert.ok((await hello(s)).ok);
    const closed = new Promise<string>((r) => s.once('disconnect', (why) => r(why)));
    s.emit('gradient:push', { leaseId: 'x', baseVersion: 0, numSamples: 1, loss: 0, computeMs: 0, specs: [], data: big }, () => undefined);
    assert.match(await closed, /transport (close|error)/);
  }
  const grown = (process.memoryUsage().rss - rss0) / 1e6;
  assert.ok(grown < 50, `RSS grew ${grown.toFixed(1)} MB`);
});

/** Heap in use after a full collection (the client sockets of this test live in this process too). */
function heapAfterGc(): number {
  v8.setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
  return process.memoryUsage().heapUsed;
}

test('10,000 hellos with fresh ids write no durable worker row; heap and RSS stay bounded', async () => {
  const rows0 = c.state.listWorkers().length;
  const rss0 = process.memoryUsage().rss;
  const heap0 = heapAfterGc();
  const N = 10_000;
  let done = 0;
  const one = async (i: number): Promise<void> => {
    const s = await connect(`100.64.${(i >> 8) & 255}.${i & 255}`);
    const r = await hello(s, { workerId: `fresh-${i.toString().padStart(6, '0')}` });
    assert.ok(r.ok);
    s.close();
    sockets.splice(sockets.indexOf(s), 1);
    done++;
  };
  const started = Date.now();
  for (let i = 0; i < N; i += 50) await Promise.all(Array.from({ length: 50 }, (_, k) => one(i + k)));
  assert.equal(done, N);
  const rows = c.state.listWorkers().length - rows0;
  await new Promise((r) => setTimeout(r, 300)); // closed connections are released
  const grown = (process.memoryUsage().rss - rss0) / 1e6;
  const heap = (heapAfterGc() - heap0) / 1e6;
  console.log(`# ${N} fresh-id hellos in ${Date.now() - started} ms: ${rows} new worker rows, heap +${heap.toFixed(1)} MB after GC, RSS +${grown.toFixed(1)} MB (clients included)`);
  assert.equal(rows, 0, 'workers that never completed a lease have no durable record');
  assert.ok(heap < 30, `heap grew ${heap.toFixed(1)} MB`);
  assert.ok(grown < 200, `RSS grew ${grown.toFixed(1)} MB`);
});
