// A real coordinator (port 0) with real Node workers running the real worker loop, over socket.io.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { io as ioClient, type Socket } from 'socket.io-client';
import { startCoordinator, type Coordinator } from './coordinator.ts';
import { loadMnist, sliceDataset, type Dataset } from './data/dataset.ts';
import type { JobRuntime } from './jobs/job-runtime.ts';
import type { WorkerId } from './leases/lease-manager.ts';
import { startNodeWorker, type NodeWorker } from '../shared/training/node-worker.ts';
import { initNodeBackend } from '../shared/training/node-backend.ts';
import { MNIST_STEP, batchTensors } from '../shared/training/gradient-step.ts';
import { tf } from '../shared/training/tf.ts';
import { encodeTensors, type TensorSpec } from '../shared/codec/tensor-codec.ts';
import { ErrorCode } from '../shared/protocol/errors.ts';
import { PROTOCOL_VERSION, type LeaseAck, type PushAck } from '../shared/protocol/messages.ts';

const TRAIN = 6400;
const TEST = 1000;
const silent = { info() {}, warn() {} };

let dataset: Dataset;
const dirs: string[] = [];
const coordinators: Coordinator[] = [];
const sockets: Socket[] = [];
const workers: NodeWorker[] = [];

before(async () => {
  await initNodeBackend('wasm');
  dataset = sliceDataset(await loadMnist(), TRAIN, TEST);
});

after(async () => {
  // Workers first (a failed test may leave them training), then the coordinators.
  for (const w of workers) {
    void w.loop.stop();
    w.socket.close();
  }
  for (const s of sockets) s.close();
  for (const c of coordinators) await c.close();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function coordinator(): Promise<{ c: Coordinator; job: JobRuntime }> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'flock-int-'));
  dirs.push(dataDir);
  const c = await startCoordinator({
    port: 0,
    host: '127.0.0.1',
    dataDir,
    clientDir: path.join(dataDir, 'no-client-build'),
    demo: 'mnist-mlp',
    // Batch pinned so that one epoch of the subset is 100 shards, whatever the demo's tuning.
    demoOverrides: { stop: { maxEpochs: 1, targetAccuracy: null }, leaseTimeoutMs: 3000, batchSize: 64 },
    sweepIntervalMs: 200,
    log: silent,
    dataset,
  });
  coordinators.push(c);
  const job = c.registry.all()[0];
  assert.ok(job);
  return { c, job };
}

async function until(what: string, cond: () => boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function accuracyOf(model: tf.LayersModel, ds: Dataset): number {
  return tf.tidy(() => {
    const { xs, ys } = batchTensors(MNIST_STEP, {
      x: ds.test.x,
      y: ds.test.y,
      numSamples: ds.test.count,
    });
    const out = model.predict(xs) as tf.Tensor;
    return tf.equal(out.argMax(-1), ys.argMax(-1)).sum().dataSync()[0]! / ds.test.count;
  });
}

// ---- training with a worker that dies mid-lease ---------------------------------------------------

let trained: { c: Coordinator; job: JobRuntime } | null = null;

test('Node workers train one epoch; a killed and a stalled worker have their shards reissued; each shard applied once', async () => {
  const { c, job } = await coordinator();
  trained = { c, job };
  const SHARDS = Math.ceil(TRAIN / job.config.batchSize);
  assert.equal(job.summary().shards.perEpoch, SHARDS);

  // Observe the job from the server side: which lease is which shard, and which pushes were applied.
  const leaseOf = new Map<string, { epoch: number; shard: number; worker: WorkerId }>();
  const applied: { epoch: number; shard: number; worker: WorkerId }[] = [];
  const requestLease = job.requestLease.bind(job);
  job.requestLease = (wid, cached) => {
    const ack = requestLease(wid, cached);
    if (ack.ok) leaseOf.set(ack.lease.leaseId, { epoch: ack.lease.epoch, shard: ack.lease.shardIndex, worker: wid });
    return ack;
  };
  const push = job.push.bind(job);
  job.push = async (wid, msg) => {
    const ack = await push(wid, msg);
    if (ack.ok && ack.status !== 'duplicate') applied.push(leaseOf.get(msg.leaseId)!);
    return ack;
  };

  const w1 = await startNodeWorker(c.url);
  const w2 = await startNodeWorker(c.url);
  workers.push(w1, w2);
  let w3: NodeWorker | null = null;
  let killedLease: { leaseId: string; epoch: number; shard: number } | null = null;
  let w3Ready: () => void = () => {};
  const w3Started = { promise: new Promise<void>((r) => (w3Ready = r)), resolve: () => w3Ready() };
  w3 = await startNodeWorker(c.url, {
    beforePush: async (lease) => {
      await w3Started.promise;
      if (killedLease) return;
      killedLease = { leaseId: lease.leaseId, epoch: lease.epoch, shard: lease.shardIndex };
      w3!.kill();
      await new Promise<never>(() => {}); // never pushes
    },
  });
  workers.push(w3);
  w3Started.resolve();
  // Worker 4 stays connected but stalls before its first push: only the deadline sweep frees its shard.
  let hungLease: { leaseId: string; epoch: number; shard: number } | null = null;
  let unhang: () => void = () => {};
  const hang = new Promise<void>((r) => (unhang = r));
  const w4 = await startNodeWorker(c.url, {
    beforePush: async (lease) => {
      if (hungLease) return;
      hungLease = { leaseId: lease.leaseId, epoch: lease.epoch, shard: lease.shardIndex };
      await hang;
    },
  });
  workers.push(w4);

  await until('the job to finish', () => job.summary().status === 'finished', 50_000);
  await Promise.all([w1.done, w2.done]);
  await job.settle();
  // The stalled worker finally pushes: too late, and it then learns the job is over.
  unhang();
  await w4.done;
  assert.equal(w4.loop.stats.accepted, 0);
  // (One refusal per lease it held: the stalled one, plus a prefetched one if the loop prefetches.)
  assert.ok(w4.loop.stats.refused >= 1);
  assert.deepEqual(w4.loop.stats.refusedByCode, { [ErrorCode.JobFinished]: w4.loop.stats.refused });

  assert.ok(killedLease, 'worker 3 computed a gradient and was killed');
  const k = killedLease as { leaseId: string; epoch: number; shard: number };
  const s = job.summary();
  // The demo's default rule combines bufferSize gradients a step; the last shard flushes the rest.
  assert.equal(s.aggregation.mode, 'buffered');
  assert.equal(s.version, Math.ceil(SHARDS / s.aggregation.bufferSize));
  assert.equal(s.aggregation.buffered, 0);
  assert.equal(s.updates.applied, SHARDS);
  assert.equal(s.shards.perEpoch, SHARDS);
  assert.equal(s.samplesApplied, TRAIN);
  assert.equal(s.epoch, 1);
  assert.equal(s.progress, 1);

  // Every shard of epoch 0 applied exactly once, none from another epoch.
  assert.equal(applied.length, SHARDS);
  const count = new Map<string, number>();
  for (const a of applied) count.set(`${a.epoch}/${a.shard}`, (count.get(`${a.epoch}/${a.shard}`) ?? 0) + 1);
  assert.equal(count.size, SHARDS);
  for (let i = 0; i < SHARDS; i++) assert.equal(count.get(`0/${i}`), 1, `shard ${i}`);

  // The killed worker's shard was done by a survivor; the survivors pushed every gradient.
  const w3Id = leaseOf.get(k.leaseId)!.worker;
  const redo = applied.find((a) => a.epoch === k.epoch && a.shard === k.shard);
  assert.ok(redo && redo.worker !== w3Id, 'the killed lease was reissued to a surviving worker');
  assert.equal(applied.filter((a) => a.worker === w3Id).length, 0);
  // The stalled worker's shard expired and was reissued to someone else.
  assert.ok(hungLease, 'worker 4 computed a gradient');
  const h = hungLease as { leaseId: string; epoch: number; shard: number };
  const w4Id = leaseOf.get(h.leaseId)!.worker;
  const redo4 = applied.find((a) => a.epoch === h.epoch && a.shard === h.shard);
  assert.ok(redo4 && redo4.worker !== w4Id && redo4.worker !== w3Id, 'the expired lease was reissued to a surviving worker');
  assert.equal(w1.loop.stats.accepted + w2.loop.stats.accepted, SHARDS);
  assert.equal(w3.loop.stats.accepted, 0);
  assert.ok(w1.loop.stats.accepted > 0 && w2.loop.stats.accepted > 0, 'both survivors did work');

  assert.ok((s.metrics.testAccuracy ?? 0) > 0.8, `test accuracy ${s.metrics.testAccuracy}`);
  assert.equal(job.metricHistory().evaluations.at(-1)?.version, s.version);
  assert.equal(s.lastCheckpointVersion, s.version);
});

test('HTTP: /api/jobs fields, and the downloaded model reproduces the last evaluation', async () => {
  assert.ok(trained, 'needs the training test');
  const { c, job } = trained;
  const SHARDS = job.summary().shards.perEpoch;
  const res = await fetch(`${c.url}/api/jobs`);
  assert.equal(res.status, 200);
  const jobs = (await res.json()) as Record<string, unknown>[];
  assert.equal(jobs.length, 1);
  const j = jobs[0]!;
  for (const k of ['id', 'name', 'status', 'version', 'epoch', 'progress', 'workers', 'samplesPerSec', 'metrics']) assert.ok(k in j, `field ${k}`);
  assert.equal(j.id, job.id);
  assert.equal(j.name, 'MNIST MLP');
  assert.equal(j.status, 'finished');
  assert.equal(j.version, job.summary().version);
  assert.equal(job.summary().updates.applied, SHARDS);
  assert.equal(typeof j.samplesPerSec, 'number');
  assert.equal(typeof j.workers, 'number');
  const metrics = j.metrics as { testAccuracy: number; testLoss: number };
  assert.equal(metrics.testAccuracy, job.summary().metrics.testAccuracy);
  assert.ok(metrics.testLoss > 0 && metrics.testLoss < 1, `test loss ${metrics.testLoss}`);

  const modelUrl = `${c.url}/api/jobs/${job.id}/model/model.json`;
  const mj = (await (await fetch(modelUrl)).json()) as { weightsManifest: { paths: string[] }[] };
  assert.deepEqual(mj.weightsManifest[0]!.paths, [`weights-v${job.summary().version}.bin`]);
  const model = await tf.loadLayersModel(tf.io.http(modelUrl, { fetchFunc: fetch }));
  const acc = accuracyOf(model, dataset);
  model.dispose();
  assert.ok(Math.abs(acc - metrics.testAccuracy) < 1e-6, `downloaded model ${acc} vs evaluation ${metrics.testAccuracy}`);

  assert.equal((await fetch(`${c.url}/api/jobs/${job.id}/model/weights-v99999.bin`)).status, 404);
  assert.equal((await fetch(`${c.url}/api/jobs/nope`)).status, 404);
});

// ---- malformed input over a raw socket --------------------------------------------------------------

test('malformed payloads get error acks, change nothing, and the server stays up; pause needs the token', async () => {
  const { c, job } = await coordinator();
  const raw = ioClient(c.url, { transports: ['websocket'] });
  sockets.push(raw);
  await new Promise<void>((r) => raw.once('connect', () => r()));
  const ask = async (event: string, payload: unknown): Promise<{ ok: boolean; code?: string; message?: string }> =>
    (await raw.timeout(5000).emitWithAck(event, payload)) as { ok: boolean; code?: string; message?: string };
  const expectCode = async (event: string, payload: unknown, code: string): Promise<void> => {
    const ack = await ask(event, payload);
    const what = `${event} ${JSON.stringify(payload)?.slice(0, 120)} -> ${ack.message}`;
    assert.equal(ack.ok, false, `${what} was accepted`);
    assert.equal(ack.code, code, what);
  };
  const caps = { backend: 'wasm', runtime: 'node' };

  await expectCode('worker:hello', {}, ErrorCode.BadRequest);
  await expectCode('worker:hello', null, ErrorCode.BadRequest);
  await expectCode('worker:hello', { protocol: 'one', capabilities: caps }, ErrorCode.BadRequest);
  await expectCode('worker:hello', { protocol: PROTOCOL_VERSION, capabilities: { ...caps, backend: 'gpu9000' } }, ErrorCode.BadRequest);
  await expectCode('worker:hello', { protocol: 99, capabilities: caps }, ErrorCode.ProtocolMismatch);
  await expectCode('lease:request', { cachedVersion: null }, ErrorCode.NotRegistered);
  await expectCode('gradient:push', { leaseId: 'x', baseVersion: 0, numSamples: 1, loss: 0, computeMs: 0, specs: [], data: new ArrayBuffer(4) }, ErrorCode.NotRegistered);
  assert.equal((await ask('worker:hello', { protocol: PROTOCOL_VERSION, capabilities: caps })).ok, true);

  await expectCode('job:get', { jobId: 5 }, ErrorCode.BadRequest);
  await expectCode('job:get', { jobId: 'nope' }, ErrorCode.UnknownJob);
  await expectCode('lease:request', {}, ErrorCode.BadRequest);
  await expectCode('lease:request', { cachedVersion: 'x' }, ErrorCode.BadRequest);
  await expectCode('lease:request', { cachedVersion: 1e300 }, ErrorCode.BadRequest);
  await expectCode('lease:request', { cachedVersion: -1 }, ErrorCode.BadRequest);
  await expectCode('lease:release', { leaseId: 42 }, ErrorCode.BadRequest);
  await expectCode('lease:release', { leaseId: 'not-mine' }, ErrorCode.UnknownLease);
  await expectCode('job:refuse', {}, ErrorCode.BadRequest);

  const leaseAck = (await ask('lease:request', { cachedVersion: null })) as LeaseAck;
  assert.ok(leaseAck.ok);
  const lease = leaseAck.lease;
  const specs = job.descriptor().trainableSpecs as TensorSpec[];
  const n = specs.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
  const good = { leaseId: lease.leaseId, baseVersion: lease.baseVersion, numSamples: lease.numSamples, loss: 0.5, computeMs: 10, specs, data: encodeTensors(specs, specs.map((t) => new Float32Array(t.shape.reduce((a, b) => a * b, 1)))) };

  // Schema-level refusals (the lease stays valid).
  const without = (k: keyof typeof good) => Object.fromEntries(Object.entries(good).filter(([key]) => key !== k));
  for (const bad of [
    {},
    42,
    'gradient',
    without('leaseId'),
    without('data'),
    without('specs'),
    { ...good, data: 'AAAA' },
    { ...good, data: [0, 0, 0, 0] },
    { ...good, data: { byteLength: 4 } },
    { ...good, leaseId: 7 },
    { ...good, leaseId: 'x'.repeat(1000) },
    { ...good, baseVersion: -1 },
    { ...good, baseVersion: 1e300 },
    { ...good, baseVersion: 0.5 },
    { ...good, numSamples: 1e12 },
    { ...good, numSamples: 0 },
    { ...good, loss: 'low' },
    { ...good, computeMs: -5 },
    { ...good, specs: 'all of them' },
    { ...good, specs: [{ name: 'x', shape: [1e12], dtype: 'float32' }] },
    { ...good, specs: [{ name: 'x', shape: [2], dtype: 'float64' }] },
    { ...good, specs: Array.from({ length: 5000 }, (_, i) => ({ name: `t${i}`, shape: [1], dtype: 'float32' })) },
  ]) {
    await expectCode('gradient:push', bad, ErrorCode.BadRequest);
  }
  // No ack callback at all: nothing to answer, nothing breaks.
  raw.emit('gradient:push', { nonsense: true });
  raw.emit('lease:request', { cachedVersion: 'x' });

  // Specific refusals: each releases the lease, so each uses a fresh one.
  const fresh = async () => {
    const a = (await ask('lease:request', { cachedVersion: 0 })) as LeaseAck;
    assert.ok(a.ok);
    return { ...good, leaseId: a.lease.leaseId, numSamples: a.lease.numSamples };
  };
  const huge = [{ name: specs[0]!.name, shape: [1 << 30, 1 << 30, 1 << 30, 1 << 30], dtype: 'float32' }];
  await expectCode('gradient:push', { ...(await fresh()), specs: huge }, ErrorCode.SpecMismatch);
  await expectCode('gradient:push', { ...(await fresh()), specs: [...specs].reverse() }, ErrorCode.SpecMismatch);
  await expectCode('gradient:push', { ...(await fresh()), data: new ArrayBuffer(8) }, ErrorCode.SpecMismatch);
  const nan = new Float32Array(n);
  nan[3] = NaN;
  await expectCode('gradient:push', { ...(await fresh()), data: nan.buffer }, ErrorCode.NonFinite);
  const big = new Float32Array(n).fill(1e3);
  await expectCode('gradient:push', { ...(await fresh()), data: big.buffer }, ErrorCode.TooLarge);
  await expectCode('gradient:push', { ...(await fresh()), baseVersion: 3 }, ErrorCode.BadRequest);
  await expectCode('gradient:push', { ...good, leaseId: 'no-such-lease' }, ErrorCode.UnknownLease);

  assert.equal(job.currentVersion, 0);
  assert.equal(job.summary().updates.applied, 0);
  assert.equal((await fetch(`${c.url}/api/health`)).status, 200);
  // The first lease survived all of the above: a well-formed push of it is applied.
  const ok = (await ask('gradient:push', good)) as PushAck;
  assert.ok(ok.ok && ok.status === 'buffered', JSON.stringify(ok));
  // Accepted for version 1, which the default rule takes once its buffer is full.
  assert.equal(ok.version, 1);
  assert.equal(job.currentVersion, 0);
  assert.equal(job.summary().updates.applied, 1);

  // Admin: pause needs the bearer token.
  const pause = `${c.url}/api/jobs/${job.id}/pause`;
  const noToken = await fetch(pause, { method: 'POST' });
  assert.equal(noToken.status, 401);
  assert.equal(((await noToken.json()) as { error: { code: string } }).error.code, ErrorCode.Unauthorized);
  assert.equal((await fetch(pause, { method: 'POST', headers: { Authorization: 'Bearer wrong' } })).status, 401);
  assert.equal(job.status, 'running');
  const paused = await fetch(pause, { method: 'POST', headers: { Authorization: `Bearer ${c.adminToken}` } });
  assert.equal(paused.status, 200);
  assert.equal(((await paused.json()) as { status: string }).status, 'paused');
  assert.equal(job.status, 'paused');
  await expectCode('lease:request', { cachedVersion: null }, ErrorCode.JobPaused);
  const resumed = await fetch(`${c.url}/api/jobs/${job.id}/resume`, { method: 'POST', headers: { Authorization: `Bearer ${c.adminToken}` } });
  assert.equal(((await resumed.json()) as { status: string }).status, 'running');
  await job.settle();
});
