// A real coordinator (port 0) with two MNIST MLP jobs of weights 3 and 1 and four unpinned Node
// workers running the real worker loop: applied samples split 3:1 (within 10%); a paused job's
// worker moves to the other job; a cancelled job's workers all move, while a worker pinned to it
// stops. The weight is an admin setting, changed live and persisted. Then the wire contract over
// raw sockets: only a lease request marked movable is ever answered JOB_REASSIGNED.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startCoordinator, type Coordinator } from '../coordinator.ts';
import { loadMnist, sliceDataset } from '../data/dataset.ts';
import { demoConfig } from '../jobs/demos.ts';
import { startNodeWorker, type NodeWorker } from '../../shared/training/node-worker.ts';
import { initNodeBackend } from '../../shared/training/node-backend.ts';
import { io as ioClient } from 'socket.io-client';
import type { FlockSocket } from '../../shared/training/link.ts';
import { ErrorCode } from '../../shared/protocol/errors.ts';
import { PROTOCOL_VERSION } from '../../shared/protocol/messages.ts';
import type { JobRuntime } from '../jobs/job-runtime.ts';

const WARMUP_MS = 6_000;
const MEASURE_MS = 15_000;
/** Shorter than the default 8 s so the contract test below waits less; steady state must still hold. */
const MIN_DWELL_MS = 2_000;

let c: Coordinator;
let dataDir: string;
const workers: NodeWorker[] = [];
const sockets: FlockSocket[] = [];

before(async () => {
  await initNodeBackend('wasm');
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'flock-sched-'));
  c = await startCoordinator({
    port: 0, host: '127.0.0.1', dataDir, clientDir: path.join(dataDir, 'no-client-build'), demo: null,
    log: { info() {}, warn() {} }, dataset: sliceDataset(await loadMnist(), 3200, 100), sweepIntervalMs: 200,
    scheduling: { minDwellMs: MIN_DWELL_MS },
  });
});

after(async () => {
  for (const w of workers) {
    void w.loop.stop();
    w.socket.close();
  }
  for (const s of sockets) s.close();
  await c.close();
  await rm(dataDir, { recursive: true, force: true });
});

async function until(what: string, cond: () => boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('two jobs of weights 3 and 1 share four unpinned workers 3:1; paused and cancelled jobs lose their workers', async (t) => {
  // Many epochs, no accuracy target and rare evaluations: neither job finishes by itself here.
  const config = (name: string, weight: number) => demoConfig('mnist-mlp', { name, weight, batchSize: 32, stop: { maxEpochs: 1000, targetAccuracy: null }, evalEveryVersions: 1_000_000, leaseTimeoutMs: 5000 });
  const a: JobRuntime = await c.registry.create('job-a', config('A', 3));
  const b: JobRuntime = await c.registry.create('job-b', config('B', 1));

  // Which job each worker's loop reports it works on (the page shows the same).
  const onJob: string[][] = [];
  for (let i = 0; i < 4; i++) {
    const seen: string[] = [];
    onJob.push(seen);
    workers.push(await startNodeWorker(c.url, { listener: { job: (j) => seen.push(j.id) } }));
  }
  const current = (): string[] => onJob.map((s) => s.at(-1) ?? '-');
  await until('every worker to train', () => onJob.every((s) => s.length > 0), 20_000);
  assert.deepEqual(current().sort(), ['job-a', 'job-a', 'job-a', 'job-b'], 'placed 3 + 1 at once');

  await sleep(WARMUP_MS);
  const a0 = a.summary().samplesApplied;
  const b0 = b.summary().samplesApplied;
  await sleep(MEASURE_MS);
  const dA = a.summary().samplesApplied - a0;
  const dB = b.summary().samplesApplied - b0;
  const share = dA / (dA + dB);
  t.diagnostic(`measured over ${MEASURE_MS / 1000} s: job A ${dA} samples, job B ${dB} samples, share of A ${share.toFixed(3)} (target 0.75)`);
  t.diagnostic(`per worker (job: samples, refusals): ${workers.map((w, i) => `${current()[i]}: ${w.loop.stats.samplesDone}, ${JSON.stringify(w.loop.stats.refusedByCode)}`).join('; ')}`);
  assert.ok(dA + dB > 2000, `enough work to judge: ${dA + dB} samples`);
  assert.ok(share >= 0.675 && share <= 0.825, `share of A ${share.toFixed(3)} not within 10% of 0.75`);
  assert.equal(onJob.flat().length, 4, `no worker flipped jobs in steady state: ${JSON.stringify(onJob)}`);

  // The weight is an admin setting: changed live over HTTP, shown in the job view, persisted.
  const patched = await fetch(`${c.url}/api/jobs/job-b/settings`, {
    method: 'POST', headers: { Authorization: `Bearer ${c.adminToken}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ weight: 1.5 }),
  });
  assert.equal(patched.status, 200);
  assert.equal(((await patched.json()) as { weight: number }).weight, 1.5);
  assert.equal(b.config.weight, 1.5);
  assert.equal((c.state.listJobs().find((j) => j.id === 'job-b')?.config as { weight?: number }).weight, 1.5);
  const bad = await fetch(`${c.url}/api/jobs/job-b/settings`, {
    method: 'POST', headers: { Authorization: `Bearer ${c.adminToken}`, 'Content-Type': 'application/json' }, body: JSON.stringify({ weight: 0 }),
  });
  assert.equal(bad.status, 400);
  assert.equal(b.config.weight, 1.5);

  // Paused: B's worker moves to A instead of waiting.
  await b.pause();
  await until("B's worker to move to A", () => current().every((j) => j === 'job-a'), 10_000);
  const onA = a.summary().samplesApplied;
  await until('A to keep training', () => a.summary().samplesApplied > onA + 500, 10_000);

  // A worker pinned to A stays there; when A is cancelled it stops, the unpinned ones move to B.
  const pinnedSeen: string[] = [];
  const pinned = await startNodeWorker(c.url, { jobId: 'job-a', listener: { job: (j) => pinnedSeen.push(j.id) } });
  workers.push(pinned);
  await b.resume();
  await until('the pinned worker to train A', () => pinned.loop.stats.accepted > 0, 10_000);
  await a.cancel();
  await until('all unpinned workers to move to B', () => current().every((j) => j === 'job-b'), 15_000);
  await pinned.done;
  assert.deepEqual(pinnedSeen, ['job-a']);
  const onB = b.summary().samplesApplied;
  await until('B to train on', () => b.summary().samplesApplied > onB + 500, 10_000);
  const sockets = [...c.io.of('/').sockets.values()].filter((s) => s.connected && s.data.workerId !== undefined);
  assert.deepEqual(sockets.map((s) => s.data.jobId).sort(), ['job-a', 'job-b', 'job-b', 'job-b', 'job-b'], 'the coordinator sees them there too (the pinned one last on A)');
  await Promise.all(workers.map((w) => w.stop()));
});

async function connect(workerId: string): Promise<FlockSocket> {
  const s: FlockSocket = ioClient(c.url, { transports: ['websocket'], reconnection: false });
  sockets.push(s);
  await new Promise<void>((resolve, reject) => {
    s.once('connect', () => resolve());
    s.once('connect_error', reject);
  });
  const hello = await s.timeout(5000).emitWithAck('worker:hello', { protocol: PROTOCOL_VERSION, workerId, capabilities: { backend: 'wasm', runtime: 'node' } });
  assert.ok(hello.ok);
  return s;
}

test('wire: JOB_REASSIGNED only to a lease request marked movable, naming the job; job:get then gives that job', async () => {
  // job-b (weight 1.5) runs on; job-c joins with weight 1. The Node workers are gone.
  await c.registry.create('job-c', demoConfig('mnist-mlp', { name: 'C', weight: 1, batchSize: 32, stop: { maxEpochs: 1000, targetAccuracy: null }, evalEveryVersions: 1_000_000 }));
  const getJob = async (s: FlockSocket): Promise<string> => {
    const res = await s.timeout(5000).emitWithAck('job:get', {});
    assert.ok(res.ok, JSON.stringify(res));
    return res.job.id;
  };
  const r1 = await connect('raw-sched-1');
  const r2 = await connect('raw-sched-2');
  const r3 = await connect('raw-sched-3');
  // Job-b had the whole last minute: the first worker to ask is sent to job-c.
  assert.equal(await getJob(r1), 'job-c', 'the job behind on its share of the sliding minute');
  r1.close();
  for (const s of [r2, r3]) assert.equal((await s.timeout(5000).emitWithAck('job:get', { jobId: 'job-c' })).ok, true);

  const bad = await r2.timeout(5000).emitWithAck('lease:request', { jobId: 'job-c', cachedVersion: null, movable: 'yes' } as never);
  assert.ok(!bad.ok && bad.code === ErrorCode.BadRequest, JSON.stringify(bad));

  // Now job-b is to get nearly everything.
  assert.equal(c.registry.updateSettings('job-b', { weight: 100 })?.config.weight, 100);
  const early = await r2.timeout(5000).emitWithAck('lease:request', { jobId: 'job-c', cachedVersion: null, movable: true });
  assert.ok(early.ok, `inside the dwell time it stays: ${JSON.stringify(early)}`);
  await sleep(MIN_DWELL_MS + 200);
  const pinned = await r3.timeout(5000).emitWithAck('lease:request', { jobId: 'job-c', cachedVersion: null });
  assert.ok(pinned.ok, `not marked movable: never reassigned (${JSON.stringify(pinned)})`);
  const moved = await r2.timeout(5000).emitWithAck('lease:request', { jobId: 'job-c', cachedVersion: null, movable: true });
  assert.ok(!moved.ok && moved.code === ErrorCode.JobReassigned, JSON.stringify(moved));
  assert.match(moved.message, /job job-b/);
  assert.equal(await getJob(r2), 'job-b');
  const onB = await r2.timeout(5000).emitWithAck('lease:request', { jobId: 'job-b', cachedVersion: null, movable: true });
  assert.ok(onB.ok && onB.lease.jobId === 'job-b', JSON.stringify(onB).slice(0, 200));
});

test('a worker whose device refuses the job it is given moves to another job and trains it', async () => {
  // job-b (weight 100) is the scheduler's first choice; this device cannot train it.
  const seen: string[] = [];
  const probed: string[] = [];
  const w = await startNodeWorker(c.url, {
    workerId: 'node-refuses-b',
    prepareJob: async (job) => {
      probed.push(job.id);
      return job.id === 'job-b' ? { ok: false, reason: 'no kernel for job-b here' } : { ok: true };
    },
    listener: { job: (j) => seen.push(j.id) },
  });
  workers.push(w);
  await until('the worker to train job-c', () => w.loop.stats.accepted >= 3, 15_000);
  assert.deepEqual(probed, ['job-b', 'job-c']);
  assert.deepEqual(seen, ['job-c']);
  const list = (await (await fetch(`${c.url}/api/workers`, { headers: { Authorization: `Bearer ${c.adminToken}` } })).json()) as { workerId: string; jobId: string; refusedJobs: string[] }[];
  // The coordinator issued the id (server-issued identities): the loop adopted it.
  const me = list.find((x) => x.workerId === w.loop.identity);
  assert.deepEqual(me && { jobId: me.jobId, refusedJobs: me.refusedJobs }, { jobId: 'job-c', refusedJobs: ['job-b'] });
  await w.stop();
});
