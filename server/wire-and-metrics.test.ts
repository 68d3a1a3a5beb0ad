// A real coordinator (port 0) and real Node workers: compression negotiated per worker (a job with
// int8 weights and top-k gradients; a worker announcing f32 only still trains uncompressed), both
// decoded into the same aggregation path; /metrics behind the admin token and on its own port.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startCoordinator, type Coordinator } from './coordinator.ts';
import { loadMnist, sliceDataset, type Dataset } from './data/dataset.ts';
import { startNodeWorker, type NodeWorker } from '../shared/training/node-worker.ts';
import { initNodeBackend } from '../shared/training/node-backend.ts';
import type { GradientPush, LeaseAck, LeasePayload } from '../shared/protocol/messages.ts';
import type { JobRuntime } from './jobs/job-runtime.ts';
import { aggregationFor } from './aggregation/aggregation-config.ts';

const silent = { info() {}, warn() {} };
let dataset: Dataset;
const dirs: string[] = [];
const coordinators: Coordinator[] = [];
const workers: NodeWorker[] = [];

before(async () => {
  await initNodeBackend('wasm');
  dataset = sliceDataset(await loadMnist(), 3200, 500);
});

after(async () => {
  for (const w of workers) await w.stop().catch(() => undefined);
  for (const c of coordinators) await c.close();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function coordinator(compression?: { weights: 'f32' | 'f16' | 'int8'; gradients: 'f32' | 'f16' | 'int8' | 'topk'; topkRatio?: number }, metricsPort?: number): Promise<Coordinator> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'flock-wire-'));
  dirs.push(dataDir);
  const c = await startCoordinator({
    port: 0, host: '127.0.0.1', dataDir, clientDir: path.join(dataDir, 'none'), demo: 'mnist-mlp', store: 'memory', log: silent, dataset,
    // Plain async: one push, one applied update (the counts below); the wire is what this file tests.
    demoOverrides: { stop: { maxEpochs: 5, targetAccuracy: null }, batchSize: 64, evalEveryVersions: 1000, aggregation: aggregationFor({ mode: 'async' }), ...(compression ? { compression } : {}) },
    metricsPort,
  });
  coordinators.push(c);
  return c;
}

async function until(what: string, cond: () => boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Calls `seen` with every lease the job grants, as the job made it (before the transport touches it). */
function onLease(job: JobRuntime, seen: (workerId: string, lease: LeasePayload) => void): void {
  const lease = job.requestLease.bind(job);
  job.requestLease = (wid, cached, codecs, rowCache) => {
    const ack = lease(wid, cached, codecs, rowCache);
    if (ack.ok) seen(wid, ack.lease);
    return ack;
  };
}

test('compression is negotiated per worker and every encoding lands in the same aggregation path', async () => {
  const c = await coordinator({ weights: 'int8', gradients: 'topk', topkRatio: 0.01 });
  const job = c.registry.all()[0]!;
  const seen: { worker: string; encoding: string | undefined; bytes: number }[] = [];
  const leases: { worker: string; weights: string | undefined; gradients: string | undefined }[] = [];
  const push = job.push.bind(job);
  job.push = (wid, msg: GradientPush) => {
    seen.push({ worker: wid, encoding: msg.encoding, bytes: (msg.data as Uint8Array).byteLength });
    return push(wid, msg);
  };
  const lease = job.requestLease.bind(job);
  job.requestLease = (wid, cached, codecs) => {
    const ack: LeaseAck = lease(wid, cached, codecs);
    if (ack.ok) leases.push({ worker: wid, weights: ack.weights?.encoding, gradients: ack.lease.gradientEncoding });
    return ack;
  };
  const modern = await startNodeWorker(c.url, { jobId: job.id, workerId: 'modern-worker-1', maxLeases: 12, pipeline: true });
  const old = await startNodeWorker(c.url, { jobId: job.id, workerId: 'old-worker-1', maxLeases: 12, codecs: ['f32'] });
  workers.push(modern, old);
  await Promise.all([modern.done, old.done]);
  const n = job.descriptor().trainableSpecs.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
  const k = Math.ceil(n * 0.01);
  // The coordinator issues worker ids (server/security/credentials.ts): match on the ids it gave.
  const mine = seen.filter((s) => s.worker === modern.loop.workerId);
  const theirs = seen.filter((s) => s.worker === old.loop.workerId);
  assert.equal(mine.length, 12);
  assert.equal(theirs.length, 12);
  assert.ok(mine.every((s) => s.encoding === 'topk' && s.bytes === 4 + k * 6), `top-k pushes of ${k} values: ${JSON.stringify(mine[0])}`);
  assert.ok(theirs.every((s) => s.encoding === undefined && s.bytes === n * 4));
  assert.ok(leases.filter((l) => l.worker === modern.loop.workerId).every((l) => l.gradients === 'topk' && (l.weights === undefined || l.weights === 'int8')));
  assert.ok(leases.filter((l) => l.worker === old.loop.workerId).every((l) => l.gradients === undefined && l.weights === undefined));
  const s = job.summary();
  assert.equal(s.updates.applied, 24, JSON.stringify(s.updates));
  assert.equal(modern.loop.stats.accepted, 12);
  assert.equal(old.loop.stats.accepted, 12);
  // Bytes up as received on the wire: 12 top-k pushes plus 12 float32 ones.
  assert.equal(s.bytes.up, 12 * (4 + k * 6) + 12 * n * 4);
});

test('/metrics: refused without the admin token, Prometheus text with it, and on its own port', async () => {
  const c = await coordinator(undefined, 0);
  const job = c.registry.all()[0]!;
  const w = await startNodeWorker(c.url, { jobId: job.id, maxLeases: 5 });
  workers.push(w);
  await w.done;
  await w.stop();
  const parked = await startNodeWorker(c.url, { jobId: job.id });
  workers.push(parked);
  await until('the second worker trains', () => job.summary().updates.applied >= 6, 30_000);

  const none = await fetch(`${c.url}/metrics`);
  assert.equal(none.status, 401);
  const wrong = await fetch(`${c.url}/metrics`, { headers: { Authorization: 'Bearer nope' } });
  assert.equal(wrong.status, 401);
  const ok = await fetch(`${c.url}/metrics`, { headers: { Authorization: `Bearer ${c.adminToken}` } });
  assert.equal(ok.status, 200);
  assert.match(ok.headers.get('content-type') ?? '', /^text\/plain/);
  const text = await ok.text();
  const value = (re: RegExp): number => Number(re.exec(text)?.[1] ?? NaN);
  assert.ok(value(/^flock_updates_applied_total\{job="mnist-mlp"\} (\d+)$/m) >= 6, 'updates applied');
  assert.equal(value(/^flock_ack_latency_seconds_count\{event="gradient:push"\} (\d+)$/m) >= 6, true, 'ack latency histogram');
  assert.ok(value(/^flock_requests_total\{event="lease:request",outcome="ok"\} (\d+)$/m) >= 6);
  assert.match(text, /^nodejs_eventloop_lag_p99_seconds [\d.e-]+$/m);
  assert.ok(value(/^flock_bytes_total\{job="mnist-mlp",direction="in"\} (\d+)$/m) >= 6 * 101_770 * 4);
  assert.ok(value(/^flock_bytes_total\{job="mnist-mlp",direction="out"\} (\d+)$/m) > 0);
  assert.equal(value(/^flock_workers\{backend="wasm",runtime="node",job="mnist-mlp"\} (\d+)$/m), 1, 'one worker still connected');
  assert.match(text, /^flock_queue_depth\{job="mnist-mlp",queue="waiting"\} \d+$/m);
  assert.equal(value(/^flock_worker_events_waiting (\d+)$/m), 0, 'no worker event waiting once the worker is idle');

  assert.ok(c.metricsPort !== null && c.metricsPort > 0);
  const own = await fetch(`http://127.0.0.1:${c.metricsPort}/metrics`);
  assert.equal(own.status, 200);
  assert.match(await own.text(), /^flock_model_version\{job="mnist-mlp"\} \d+$/m);
  assert.equal((await fetch(`http://127.0.0.1:${c.metricsPort}/api/jobs`)).status, 404);
});

test('row cache: after the first epoch a worker downloads no rows, and its gradients are still applied', async () => {
  const c = await coordinator();
  const job = c.registry.all()[0]!;
  const travelled = new Map<number, number>();
  onLease(job, (_wid, lease) => {
    assert.ok(lease.fresh !== undefined, 'the worker announced a row cache');
    const fresh = (lease.fresh as Uint32Array).length;
    travelled.set(lease.epoch, (travelled.get(lease.epoch) ?? 0) + fresh);
  });
  const w = await startNodeWorker(c.url, { jobId: job.id, maxLeases: 110, pipeline: true });
  workers.push(w);
  await w.done;
  assert.equal(travelled.get(0), 3200, 'every row once in epoch 1');
  assert.equal(travelled.get(1), 0, 'no row in epoch 2');
  assert.equal(job.summary().updates.applied, 110);
  assert.equal(w.loop.stats.accepted, 110);
});

test('rows travel DEFLATE-compressed to a worker that can inflate them, as they are to one that cannot; both train on the same rows', async () => {
  const c = await coordinator();
  const job = c.registry.all()[0]!;
  const raw = new Map<string, number>();
  onLease(job, (wid, lease) => raw.set(wid, (raw.get(wid) ?? 0) + (lease.x as Uint8Array).byteLength + (lease.y as Uint8Array).byteLength));
  const down = (): number => job.summary().bytes.down;
  // No row cache: every lease brings its rows, so the saving shows in every lease.
  const before = down();
  const packed = await startNodeWorker(c.url, { jobId: job.id, maxLeases: 12, rowCacheBytes: 0 });
  workers.push(packed);
  await packed.done;
  const packedDown = down() - before;
  const plain = await startNodeWorker(c.url, { jobId: job.id, maxLeases: 12, rowCacheBytes: 0, rowCodecs: [] });
  workers.push(plain);
  await plain.done;
  const plainDown = down() - before - packedDown;
  const rawPacked = raw.get(packed.loop.workerId!)!;
  const rawPlain = raw.get(plain.loop.workerId!)!;
  assert.equal(rawPacked, rawPlain, 'the same row bytes before compression (12 leases of 64 MNIST rows each)');
  // Weights come down whole to both (f32, a new worker each time); the rows are what differs.
  const weights = plainDown - rawPlain;
  const packedRows = packedDown - weights;
  assert.ok(packedRows > 0 && packedRows < rawPacked / 3, `MNIST rows ${rawPacked} bytes raw, ${packedRows} compressed (expected over 3x smaller)`);
  assert.equal(packed.loop.stats.accepted, 12, 'gradients computed on inflated rows are applied');
  assert.equal(plain.loop.stats.accepted, 12);
  assert.equal(job.summary().updates.applied, 24);
});
