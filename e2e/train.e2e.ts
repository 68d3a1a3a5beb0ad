// Journey: two volunteer tabs (WebGPU and WASM) train the MNIST MLP demo to 95% test accuracy while
// the coordinator is killed (SIGKILL) and restarted mid-run; training resumes from the checkpoint,
// and the saved model loads with tf.loadLayersModel and scores the same test accuracy.

import { test, expect, type Page } from '@playwright/test';
import { mkdtempSync, rmSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { startCoordinatorProcess, type CoordinatorProcess } from './coordinator-process.ts';
import { loadMnist } from '../server/data/dataset.ts';
import { Evaluator } from '../server/evaluation/evaluator.ts';
import { weightSpecs } from '../shared/training/model.ts';
import { MNIST_STEP } from '../shared/training/gradient-step.ts';
import { memoryJobData } from '../server/data/job-data.ts';

interface JobJson {
  id: string;
  status: string;
  version: number;
  workers: number;
  batchSize: number;
  metrics: { testAccuracy: number | null; testLoss: number | null };
  lastCheckpointVersion: number | null;
  aggregation: { mode: string; bufferSize: number; localSteps: number | null };
}

/**
 * Examples in one version: bufferSize leases (1 in async mode) of batchSize examples, each lease
 * localSteps minibatches in local mode. Thresholds count examples, so they hold in every mode.
 */
const examplesPerVersion = (j: JobJson): number => j.aggregation.bufferSize * j.batchSize * (j.aggregation.localSteps ?? 1);
/** The crash comes once a checkpoint covers this many examples (200 leases of 128, a third of an epoch). */
const KILL_AFTER_EXAMPLES = 25_600;

const TOKEN = 'e2e-admin-token';

async function job(url: string): Promise<JobJson> {
  const jobs = (await (await fetch(`${url}/api/jobs`)).json()) as JobJson[];
  return jobs[0]!;
}

async function pageStats(p: Page): Promise<{ accepted: number; backend: string | undefined; state: string }> {
  return p.evaluate(() => {
    const f = (window as unknown as { flock: { stats: { accepted: number } | null; backend: { backend: string } | null; state: string } }).flock;
    return { accepted: f.stats?.accepted ?? 0, backend: f.backend?.backend, state: f.state };
  });
}

function checkpointVersions(dataDir: string): number[] {
  const dir = path.join(dataDir, 'jobs', 'mnist-mlp', 'checkpoints');
  return readdirSync(dir).filter((n) => /^v\d+$/.test(n)).map((n) => Number(n.slice(1))).sort((a, b) => b - a);
}

test('two tabs train the MLP to 95% through a coordinator crash, and the model loads', async ({ browser }) => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'flock-e2e-'));
  // FLOCK_E2E_AGGREGATION (e.g. `local`, `async`) runs the same journey in another aggregation mode.
  const aggregation: Record<string, string> = process.env.FLOCK_E2E_AGGREGATION ? { FLOCK_AGGREGATION: process.env.FLOCK_E2E_AGGREGATION } : {};
  const env = { FLOCK_DATA_DIR: dataDir, FLOCK_ADMIN_TOKEN: TOKEN, FLOCK_DEMO: 'mnist-mlp', FLOCK_TARGET_ACCURACY: '0.95', FLOCK_MAX_EPOCHS: '10', ...aggregation };
  let coord: CoordinatorProcess = await startCoordinatorProcess(env);
  try {
    const ctx = await browser.newContext();
    const gpuTab = await ctx.newPage();
    const wasmTab = await ctx.newPage();
    await gpuTab.goto(`${coord.url}/?autostart=1&backend=webgpu`);
    await wasmTab.goto(`${coord.url}/?autostart=1&backend=wasm`);

    // Both tabs run on the backend they were asked for and get gradients accepted.
    await expect.poll(async () => (await pageStats(gpuTab)).backend, { timeout: 60_000 }).toBe('webgpu');
    await expect.poll(async () => (await pageStats(wasmTab)).backend).toBe('wasm');
    await expect.poll(async () => (await job(coord.url)).workers, { timeout: 60_000 }).toBe(2);

    // Train until a checkpoint covering a third of an epoch is on disk (v200 in async mode, v34 in the
    // default buffered x6, v13 in local 8 steps x2), then kill the coordinator without warning.
    await expect.poll(async () => { const j = await job(coord.url); return (j.lastCheckpointVersion ?? 0) * examplesPerVersion(j); }, { timeout: 120_000, intervals: [500] }).toBeGreaterThanOrEqual(KILL_AFTER_EXAMPLES);
    const before = await job(coord.url);
    expect(before.status).toBe('running');
    await coord.stop('SIGKILL');
    const onDisk = checkpointVersions(dataDir)[0]!;
    expect(onDisk * examplesPerVersion(before)).toBeGreaterThanOrEqual(KILL_AFTER_EXAMPLES);
    console.log(`${before.aggregation.mode} x${before.aggregation.bufferSize}: killed at v${before.version}, checkpoint v${onDisk} (${onDisk * examplesPerVersion(before)} examples)`);

    coord = await startCoordinatorProcess({ ...env, PORT: String(coord.port) });
    const resumed = await job(coord.url);
    // Resumed from the newest checkpoint plus the logged updates after it: not from scratch, and
    // no acknowledged gradient lost (the version is at least what the API showed before the kill).
    expect(coord.logs.join('\n')).toContain(`resumed from checkpoint v${onDisk} + `);
    expect(resumed.version).toBeGreaterThanOrEqual(onDisk);
    expect(resumed.version).toBeGreaterThanOrEqual(before.version);

    // The tabs reconnect by themselves and training reaches the target.
    await expect.poll(async () => (await job(coord.url)).status, { timeout: 180_000, intervals: [1000] }).toBe('finished');
    // The final checkpoint (written after the final evaluation) is the one served.
    await expect.poll(async () => { const j = await job(coord.url); return j.lastCheckpointVersion === j.version; }).toBe(true);
    const done = await job(coord.url);
    expect(done.metrics.testAccuracy!).toBeGreaterThanOrEqual(0.95);
    expect(done.version).toBeGreaterThan(onDisk);
    console.log(`finished at v${done.version} (${done.version * examplesPerVersion(done)} examples) with ${done.metrics.testAccuracy} test accuracy`);
    const gpu = await pageStats(gpuTab);
    const wasm = await pageStats(wasmTab);
    expect(gpu.accepted).toBeGreaterThan(0);
    expect(wasm.accepted).toBeGreaterThan(0);
    await expect.poll(async () => (await pageStats(wasmTab)).state, { timeout: 30_000 }).toBe('finished');
    await wasmTab.screenshot({ path: 'e2e/artifacts/volunteer-finished.png', fullPage: true });

    // The checkpoint loads with tf.loadLayersModel and gives the same test accuracy.
    await tf.setBackend('wasm');
    const model = await tf.loadLayersModel(tf.io.http(`${coord.url}/api/jobs/mnist-mlp/model/model.json`, { fetchFunc: fetch }));
    const mnist = await loadMnist();
    const specs = weightSpecs(model);
    const flat = tf.tidy(() => tf.concat(model.weights.map((w) => w.read().reshape([-1]))));
    const weights = flat.dataSync() as Float32Array;
    flat.dispose();
    const evaluator = new Evaluator(model.toJSON(null, false), MNIST_STEP, memoryJobData(mnist));
    const r = await evaluator.evaluate(done.version, specs, weights, Date.now);
    expect(Math.abs(r.testAccuracy! - done.metrics.testAccuracy!)).toBeLessThan(1e-6);
    evaluator.dispose();
    model.dispose();
    await ctx.close();
  } finally {
    await coord.stop('SIGTERM');
    rmSync(dataDir, { recursive: true, force: true });
  }
});
