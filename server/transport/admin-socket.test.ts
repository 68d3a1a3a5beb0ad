// The admin surface against a real coordinator (port 0) and a real Node worker: the token is
// required on HTTP and on the /admin namespace; a watcher gets a snapshot then throttled deltas
// (<= 4/s) with per-worker rows; jobs are created from a demo and retuned while running.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { io as ioClient, type Socket } from 'socket.io-client';
import { startCoordinator, type Coordinator } from '../coordinator.ts';
import { loadMnist, sliceDataset, type Dataset } from '../data/dataset.ts';
import { startNodeWorker, type NodeWorker } from '../../shared/training/node-worker.ts';
import { initNodeBackend } from '../../shared/training/node-backend.ts';
import type { AdminClientToServer, AdminServerToClient, DemoInfo, JobDelta, JobView, JobsOverview } from '../../shared/protocol/admin.ts';

const TOKEN = 'test-admin-token';
const silent = { info() {}, warn() {} };
let c: Coordinator;
let dataDir: string;
const sockets: Socket[] = [];
const workers: NodeWorker[] = [];

before(async () => {
  await initNodeBackend('wasm');
  const dataset: Dataset = sliceDataset(await loadMnist(), 6400, 500);
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'flock-admin-'));
  c = await startCoordinator({
    port: 0,
    host: '127.0.0.1',
    dataDir,
    clientDir: path.join(dataDir, 'no-client-build'),
    demo: 'mnist-mlp',
    // evalEveryVersions 4: the default rule makes one version of every 6 gradients.
    demoOverrides: { stop: { maxEpochs: 50, targetAccuracy: null }, batchSize: 64, evalEveryVersions: 4 },
    adminToken: TOKEN,
    store: 'memory',
    log: silent,
    dataset,
  });
});

after(async () => {
  for (const w of workers) await w.stop().catch(() => undefined);
  for (const s of sockets) s.close();
  await c.close();
  await rm(dataDir, { recursive: true, force: true });
});

type AdminSocket = Socket<AdminServerToClient, AdminClientToServer>;

function admin(token: string | undefined): AdminSocket {
  const s: AdminSocket = ioClient(`${c.url}/admin`, { transports: ['websocket'], reconnection: false, auth: token === undefined ? {} : { token } });
  sockets.push(s);
  return s;
}

function connectOutcome(s: AdminSocket): Promise<string> {
  return new Promise((resolve) => {
    s.once('connect', () => resolve('connected'));
    s.once('connect_error', (e) => resolve(`refused: ${e.message}`));
  });
}

const api = (p: string, init: RequestInit & { token?: string } = {}): Promise<Response> =>
  fetch(`${c.url}${p}`, { ...init, headers: { 'Content-Type': 'application/json', ...(init.token ? { Authorization: `Bearer ${init.token}` } : {}) } });

test('the /admin namespace refuses a missing or wrong token and accepts the right one', async () => {
  assert.equal(await connectOutcome(admin(undefined)), 'refused: UNAUTHORIZED');
  assert.equal(await connectOutcome(admin('wrong')), 'refused: UNAUTHORIZED');
  const ok = admin(TOKEN);
  const overview = new Promise<JobsOverview>((r) => ok.once('jobs:overview', r));
  assert.equal(await connectOutcome(ok), 'connected');
  assert.deepEqual((await overview).jobs.map((j) => j.id), ['mnist-mlp']);
});

test('admin HTTP routes answer 401 without the token and change nothing', async () => {
  const body = JSON.stringify({ source: { kind: 'demo', demo: 'mnist-mlp' }, settings: {} });
  for (const token of [undefined, 'wrong']) {
    assert.equal((await api('/api/jobs', { method: 'POST', body, ...(token ? { token } : {}) })).status, 401);
    assert.equal((await api('/api/jobs/mnist-mlp/pause', { method: 'POST', ...(token ? { token } : {}) })).status, 401);
    assert.equal((await api('/api/jobs/mnist-mlp/settings', { method: 'POST', body: '{"learningRate":1}', ...(token ? { token } : {}) })).status, 401);
    assert.equal((await api('/api/workers', token ? { token } : {})).status, 401);
    assert.equal((await api('/api/jobs/mnist-mlp/history.csv', token ? { token } : {})).status, 401);
  }
  assert.equal(c.registry.all().length, 1);
  assert.equal(c.registry.get('mnist-mlp')!.status, 'running');
  assert.equal(c.registry.get('mnist-mlp')!.config.optimizer.learningRate, 0.003);
  // Public reads stay public.
  assert.equal((await api('/api/jobs')).status, 200);
});

test('a watcher gets a snapshot, then at most 4 deltas/s carrying the worker rows', async () => {
  const s = admin(TOKEN);
  await connectOutcome(s);
  const deltas: { at: number; d: JobDelta }[] = [];
  s.on('job:delta', (d) => deltas.push({ at: Date.now(), d }));
  const ack = await s.timeout(5000).emitWithAck('job:watch', { jobId: 'mnist-mlp' });
  assert.ok(ack.ok);
  assert.equal(ack.snapshot.job.id, 'mnist-mlp');
  assert.equal(ack.snapshot.staleness.length, 33);

  const w = await startNodeWorker(c.url);
  workers.push(w);
  const t0 = Date.now();
  while (Date.now() - t0 < 4000) await new Promise((r) => setTimeout(r, 100));
  const pushes = w.loop.stats.shardsDone;
  assert.ok(pushes > 10, `worker pushed ${pushes}`);
  // Throttled: pushes arrive far faster than deltas; never more than one per 250 ms (+ jitter).
  const recent = deltas.filter((x) => x.at >= t0);
  assert.ok(recent.length >= 4, `only ${recent.length} deltas`);
  assert.ok(recent.length <= Math.ceil((Date.now() - t0) / 250) + 1, `${recent.length} deltas in ${Date.now() - t0} ms`);
  for (let i = 1; i < recent.length; i++) assert.ok(recent[i]!.d.sentAt - recent[i - 1]!.d.sentAt >= 245);
  // The worker's row arrived with its counts, and the job's figures moved.
  const rows = recent.flatMap((x) => x.d.workers?.rows ?? []).filter((r) => r.workerId === w.loop.workerId);
  const last = rows.at(-1);
  assert.ok(last, 'no row for the worker');
  assert.equal(last.runtime, 'node');
  assert.ok(last.accepted > 0 && last.leasesDone >= last.accepted);
  assert.ok(recent.some((x) => x.d.evaluations.length > 0), 'an evaluation reached the watcher');
  assert.ok(recent.at(-1)!.d.job.version > 0);
  // One throttle interval (250 ms) plus slack for a busy event loop (an evaluation, a loaded CI box).
  for (const x of recent) assert.ok(x.d.sentAt - x.d.eventAt <= 1000, `eventAt ${x.d.sentAt - x.d.eventAt} ms before sentAt`);

  // Leaving removes the row right away.
  const wid = w.loop.workerId!;
  await w.stop();
  workers.splice(workers.indexOf(w), 1);
  await new Promise((r) => setTimeout(r, 1300));
  assert.ok(deltas.some((x) => x.d.workers?.removed.includes(wid)), 'removal delta');
  assert.equal(c.workerStats.row(wid), undefined);
});

test('create a job from a demo with edited settings; retune lr and staleness bound while running', async () => {
  const create = await api('/api/jobs', {
    method: 'POST',
    token: TOKEN,
    body: JSON.stringify({ source: { kind: 'demo', demo: 'mnist-mlp' }, settings: { name: 'Tuned MLP', learningRate: 0.01, batchSize: 32, maxStaleness: 8, maxEpochs: 3, targetAccuracy: 0.9 } }),
  });
  assert.equal(create.status, 201);
  const view = (await create.json()) as JobView;
  assert.equal(view.id, 'mnist-mlp-2');
  assert.equal(view.name, 'Tuned MLP');
  assert.equal(view.learningRate, 0.01);
  assert.equal(view.batchSize, 32);
  assert.equal(view.maxStaleness, 8);
  assert.equal(view.maxEpochs, 3);
  assert.equal(view.targetAccuracy, 0.9);
  assert.equal(view.shards.perEpoch, 200);
  // New jobs get the robust buffered default; a create request may opt into plain async.
  assert.equal(view.aggregation.mode, 'buffered');
  assert.equal(view.aggregation.rule, 'centered-clip');
  const trusted = await api('/api/jobs', { method: 'POST', token: TOKEN, body: JSON.stringify({ id: 'trusted', source: { kind: 'demo', demo: 'mnist-mlp' }, settings: { aggregation: { mode: 'async' } } }) });
  assert.equal(trusted.status, 201);
  assert.equal(((await trusted.json()) as JobView).aggregation.mode, 'async');
  await api('/api/jobs/trusted/cancel', { method: 'POST', token: TOKEN });
  // The create form starts from the demo's aggregation (the robust default) and local mode's steps.
  const demos = (await (await api('/api/demos', { token: TOKEN })).json()) as DemoInfo[];
  assert.deepEqual(demos.find((d) => d.name === 'mnist-mlp')?.aggregation, { mode: 'buffered', rule: 'centered-clip', bufferSize: 6, localSteps: 32 });

  const bad = await api('/api/jobs', { method: 'POST', token: TOKEN, body: JSON.stringify({ source: { kind: 'demo', demo: 'nope' }, settings: {} }) });
  assert.equal(bad.status, 400);
  const badLr = await api('/api/jobs/mnist-mlp-2/settings', { method: 'POST', token: TOKEN, body: JSON.stringify({ learningRate: -1 }) });
  assert.equal(badLr.status, 400);

  const patch = await api('/api/jobs/mnist-mlp-2/settings', { method: 'POST', token: TOKEN, body: JSON.stringify({ learningRate: 0.002, maxStaleness: 4 }) });
  assert.equal(patch.status, 200);
  const job = c.registry.get('mnist-mlp-2')!;
  assert.equal(job.config.optimizer.learningRate, 0.002);
  assert.equal(job.config.staleness.maxStaleness, 4);
  // Persisted: the StateStore's job record holds the new settings.
  const stored = c.state.listJobs().find((j) => j.id === 'mnist-mlp-2')!;
  assert.equal(stored.config.optimizer.learningRate, 0.002);
  assert.equal(stored.config.staleness.maxStaleness, 4);

  const csv = await (await api('/api/jobs/mnist-mlp/history.csv', { token: TOKEN })).text();
  assert.match(csv.split('\n')[0]!, /^series,version,at_ms,at_iso,test_accuracy,test_loss,train_loss/);
  assert.ok(csv.split('\n').some((l) => l.startsWith('evaluation,')));
  assert.ok(csv.split('\n').some((l) => l.startsWith('train_loss,')));
});
