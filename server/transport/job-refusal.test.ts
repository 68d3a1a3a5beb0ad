// A real coordinator (port 0): a worker that refuses a job (job:refuse) is never leased that job
// again, across reconnections (same worker id), while other workers still are; a Node worker whose
// prepareJob refuses ends 'unsupported' and /api/workers lists the refusal.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { io as ioClient } from 'socket.io-client';
import { startCoordinator, type Coordinator } from '../coordinator.ts';
import { loadMnist, sliceDataset, type Dataset } from '../data/dataset.ts';
import { startNodeWorker } from '../../shared/training/node-worker.ts';
import { initNodeBackend } from '../../shared/training/node-backend.ts';
import { ErrorCode } from '../../shared/protocol/errors.ts';
import { PROTOCOL_VERSION } from '../../shared/protocol/messages.ts';
import type { FlockSocket } from '../../shared/training/link.ts';
import type { WorkerState } from '../../shared/training/worker-loop.ts';

let c: Coordinator;
let dataDir: string;
const sockets: FlockSocket[] = [];

before(async () => {
  await initNodeBackend('wasm');
  const dataset: Dataset = sliceDataset(await loadMnist(), 640, 200);
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'flock-refusal-'));
  c = await startCoordinator({
    port: 0, host: '127.0.0.1', dataDir, clientDir: path.join(dataDir, 'no-client-build'), demo: 'mnist-mlp',
    demoOverrides: { batchSize: 64 }, log: { info() {}, warn() {} }, dataset,
  });
});

after(async () => {
  for (const s of sockets) s.close();
  await c.close();
  await rm(dataDir, { recursive: true, force: true });
});

/** Each named tab's coordinator-issued id and credential, kept across its reconnections as a tab keeps them. */
const identities = new Map<string, { workerId: string; credential: string }>();

async function connect(name: string): Promise<FlockSocket> {
  const s: FlockSocket = ioClient(c.url, { transports: ['websocket'], reconnection: false });
  sockets.push(s);
  await new Promise<void>((resolve, reject) => {
    s.once('connect', () => resolve());
    s.once('connect_error', reject);
  });
  const kept = identities.get(name);
  const hello = await s.timeout(5000).emitWithAck('worker:hello', { protocol: PROTOCOL_VERSION, ...kept, capabilities: { backend: 'wasm', runtime: 'browser' } });
  assert.ok(hello.ok && hello.credential);
  if (kept) assert.equal(hello.workerId, kept.workerId, 'a valid credential keeps the id');
  identities.set(name, { workerId: hello.workerId, credential: hello.credential });
  return s;
}

const lease = (s: FlockSocket) => s.timeout(5000).emitWithAck('lease:request', { cachedVersion: null });

test('after job:refuse the worker gets MODEL_UNSUPPORTED_ON_DEVICE, also after reconnecting; others still get work', async () => {
  const job = c.registry.all()[0]!;
  const a = await connect('tab-a-0001');
  const got = await a.timeout(5000).emitWithAck('job:get', {});
  assert.ok(got.ok);
  const first = await lease(a);
  assert.ok(first.ok, 'leased before refusing');
  assert.equal(job.outstandingLeases, 1);

  const refused = await a.timeout(5000).emitWithAck('job:refuse', { jobId: job.id, reason: "Kernel 'Conv2DBackpropFilter' not registered for backend 'webgl'" });
  assert.deepEqual(refused, { ok: true });
  assert.equal(job.outstandingLeases, 0, 'the lease it held went back to the pool');
  const again = await lease(a);
  assert.ok(!again.ok);
  assert.equal(again.code, ErrorCode.Unsupported);
  assert.match(again.message, /Conv2DBackpropFilter/);

  a.close();
  const aBack = await connect('tab-a-0001');
  const afterReconnect = await lease(aBack);
  assert.ok(!afterReconnect.ok && afterReconnect.code === ErrorCode.Unsupported, 'the refusal outlives the connection');

  const b = await connect('tab-b-0001');
  const other = await lease(b);
  assert.ok(other.ok, 'another worker still gets the job');

  const workers = (await (await fetch(`${c.url}/api/workers`, { headers: { Authorization: `Bearer ${c.adminToken}` } })).json()) as { workerId: string; refusedJobs: string[] }[];
  assert.deepEqual(workers.find((w) => w.workerId === identities.get('tab-a-0001')!.workerId)?.refusedJobs, [job.id]);
  assert.deepEqual(workers.find((w) => w.workerId === identities.get('tab-b-0001')!.workerId)?.refusedJobs, []);
});

test('a refusal of a job that does not exist changes nothing; a malformed one is a bad request', async () => {
  const s = await connect('tab-c-0001');
  assert.deepEqual(await s.timeout(5000).emitWithAck('job:refuse', { jobId: 'no-such-job', reason: 'x' }), { ok: true });
  assert.ok((await lease(s)).ok);
  const bad = await s.timeout(5000).emitWithAck('job:refuse', { jobId: '', reason: 'x' } as never);
  assert.ok(!bad.ok && bad.code === ErrorCode.BadRequest);
});

test('a Node worker whose probe refuses the job ends unsupported and is not leased the job', async () => {
  const job = c.registry.all()[0]!;
  const states: WorkerState[] = [];
  const w = await startNodeWorker(c.url, {
    workerId: 'node-refuser',
    prepareJob: async () => ({ ok: false, reason: 'non-finite gradients on a probe step' }),
    listener: { state: (s) => states.push(s) },
  });
  await w.done;
  assert.equal(states.at(-1), 'unsupported');
  // The tab keeps the id and credential the coordinator issued (LoopOptions.onIdentity).
  identities.set('node-refuser', { workerId: w.loop.identity, credential: w.loop.credential! });
  assert.equal(w.loop.stats.shardsDone, 0);
  w.socket.close();
  await new Promise((r) => setTimeout(r, 100)); // the coordinator sees the old connection go
  const res = await lease(await connect('node-refuser'));
  assert.ok(!res.ok && res.code === ErrorCode.Unsupported, `job ${job.id} must not be leased to the worker that refused it`);
});
