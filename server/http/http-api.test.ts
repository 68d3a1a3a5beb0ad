// A real coordinator (port 0) answering the public and admin HTTP API: a favicon for every page, a
// missing admin token told apart from a wrong one, admin controls refused (409) where they make no
// sense (pausing a cancelled job), and `epoch` counted from 1.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startCoordinator, type Coordinator } from '../coordinator.ts';
import { loadMnist, sliceDataset } from '../data/dataset.ts';
import { initNodeBackend } from '../../shared/training/node-backend.ts';

const TOKEN = 'http-api-test-token';
let c: Coordinator;
let dataDir: string;

before(async () => {
  await initNodeBackend('wasm');
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'flock-http-api-'));
  c = await startCoordinator({
    port: 0, host: '127.0.0.1', dataDir, clientDir: path.join(dataDir, 'no-client-build'), adminToken: TOKEN, demo: 'mnist-mlp',
    demoOverrides: { batchSize: 64 }, log: { info() {}, warn() {} }, dataset: sliceDataset(await loadMnist(), 640, 200),
  });
});

after(async () => {
  await c.close();
  await rm(dataDir, { recursive: true, force: true });
});

const post = (p: string, token?: string): Promise<Response> => fetch(`${c.url}${p}`, { method: 'POST', headers: token ? { Authorization: `Bearer ${token}` } : {} });
const errorOf = async (r: Response): Promise<{ code: string; message: string }> => ((await r.json()) as { error: { code: string; message: string } }).error;

test('the favicon is served (no 404 on any page)', async () => {
  for (const p of ['/favicon.svg', '/favicon.ico']) {
    const r = await fetch(`${c.url}${p}`);
    assert.equal(r.status, 200, p);
    assert.equal(r.headers.get('content-type'), 'image/svg+xml');
    assert.match(await r.text(), /^<svg /);
  }
});

test('a missing admin token is "required", a wrong one "refused"', async () => {
  const missing = await post('/api/jobs/mnist-mlp/pause');
  assert.equal(missing.status, 401);
  assert.match((await errorOf(missing)).message, /^admin token required/);
  const wrong = await post('/api/jobs/mnist-mlp/pause', 'not-the-token');
  assert.equal(wrong.status, 401);
  assert.match((await errorOf(wrong)).message, /^admin token refused/);
});

test('the best checkpoint: `best` in the job JSON, ?which=best downloads it, the checkpoints list marks it', async () => {
  const job = c.registry.get('mnist-mlp')!;
  const before = (await (await fetch(`${c.url}/api/jobs/mnist-mlp`)).json()) as { best: unknown; epoch: number };
  assert.equal(before.best, null);
  assert.equal(before.epoch, 1);
  assert.equal((await fetch(`${c.url}/api/jobs/mnist-mlp/model/model.json?which=best`)).status, 404);
  await job.evaluateNow();
  await job.settle();
  const s = (await (await fetch(`${c.url}/api/jobs/mnist-mlp`)).json()) as { best: { version: number; metric: string; testAccuracy: number } };
  assert.equal(s.best.version, 0);
  assert.equal(s.best.metric, 'testAccuracy');
  const model = (await (await fetch(`${c.url}/api/jobs/mnist-mlp/model/model.json?which=best`)).json()) as { weightsManifest: { paths: string[] }[] };
  assert.deepEqual(model.weightsManifest[0]!.paths, ['weights-best-v0.bin']);
  const weights = await fetch(`${c.url}/api/jobs/mnist-mlp/model/weights-best-v0.bin`);
  assert.equal(weights.status, 200);
  assert.equal((await weights.arrayBuffer()).byteLength, (784 * 128 + 128 + 128 * 10 + 10) * 4);
  const list = (await (await fetch(`${c.url}/api/jobs/mnist-mlp/checkpoints`)).json()) as { version: number; latest: boolean; best: boolean; which: string }[];
  assert.deepEqual(list.map((r) => [r.version, r.which, r.latest, r.best]), [[0, 'latest', true, true]]);
});

test('controls that make no sense in the job status answer 409 and change nothing', async () => {
  const resume = await post('/api/jobs/mnist-mlp/resume', TOKEN);
  assert.equal(resume.status, 409);
  assert.deepEqual(await errorOf(resume), { code: 'WRONG_JOB_STATUS', message: 'the job is already running' });
  assert.equal((await post('/api/jobs/mnist-mlp/cancel', TOKEN)).status, 200);
  for (const [action, message] of [
    ['pause', 'the job is cancelled; only a running job can be paused'],
    ['resume', 'the job is cancelled; only a paused job can be resumed'],
    ['cancel', 'the job is already cancelled; only a running or paused job can be cancelled'],
  ] as const) {
    const r = await post(`/api/jobs/mnist-mlp/${action}`, TOKEN);
    assert.equal(r.status, 409, action);
    assert.deepEqual(await errorOf(r), { code: 'WRONG_JOB_STATUS', message });
  }
  assert.equal(c.registry.get('mnist-mlp')!.status, 'cancelled');
});
