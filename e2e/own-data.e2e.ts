// Journey: a user trains their own models on their own data. Three job folders (a CSV tabular
// classification, a Parquet image classification, an Arrow regression) are submitted with
// `flockctl submit` to a fresh coordinator, trained by `flockctl worker` processes and a browser tab,
// each to a stated bar; each exported model (`flockctl export`), loaded with tf.loadLayersModel,
// scores what the coordinator reported. The dashboard's New job takes a job file upload and shows
// a refusal next to the file field.

import { test, expect } from '@playwright/test';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { parse as parseCsv } from 'csv-parse/sync';
import { parquetReadObjects } from 'hyparquet';
import { tableFromIPC } from 'apache-arrow';
import { startCoordinatorProcess, type CoordinatorProcess } from './coordinator-process.ts';
import { prepareRows, writeArrowRegressionJob, writeCsvJob, writeParquetMnistJob } from '../server/jobs/testing/own-data.ts';
import type { StoreMeta } from '../server/data/store/store-meta.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.join(root, 'server', 'cli', 'flockctl.js');
const TOKEN = 'e2e-own-data-token';

interface JobJson {
  id: string;
  status: string;
  workers: number;
  metrics: { testAccuracy: number | null; testLoss: number | null; testMae: number | null };
}

function flockctl(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, ...args], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    p.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    p.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

async function jobs(url: string): Promise<JobJson[]> {
  return (await (await fetch(`${url}/api/jobs`)).json()) as JobJson[];
}

/** Loads an export folder with tf.loadLayersModel (model.json + weights.bin as tfjs wrote them). */
async function loadExport(dir: string): Promise<{ model: tf.LayersModel; meta: StoreMeta }> {
  const json = JSON.parse(await readFile(path.join(dir, 'model.json'), 'utf8')) as { modelTopology: object; weightsManifest: { weights: tf.io.WeightsManifestEntry[] }[] };
  const weights = await readFile(path.join(dir, 'weights.bin'));
  const model = await tf.loadLayersModel(tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs: json.weightsManifest[0]!.weights, weightData: new Uint8Array(weights).buffer }));
  return { model, meta: JSON.parse(await readFile(path.join(dir, 'preprocessing.json'), 'utf8')) as StoreMeta };
}

test('own data: CSV, Parquet and Arrow jobs submitted with flockctl, trained by CLI workers and a tab, exported and re-scored', async ({ browser }) => {
  await tf.setBackend('wasm');
  const work = mkdtempSync(path.join(tmpdir(), 'flock-own-'));
  let coord: CoordinatorProcess | null = null;
  const workers: ChildProcess[] = [];
  try {
    coord = await startCoordinatorProcess({ FLOCK_DATA_DIR: path.join(work, 'data'), FLOCK_ADMIN_TOKEN: TOKEN, FLOCK_DEMO: 'none' });
    const env = { FLOCK_URL: coord.url, FLOCK_ADMIN_TOKEN: TOKEN };
    const files = {
      csv: await writeCsvJob(path.join(work, 'csv')),
      parquet: await writeParquetMnistJob(path.join(work, 'parquet')),
      arrow: await writeArrowRegressionJob(path.join(work, 'arrow')),
    };
    const ids: Record<keyof typeof files, string> = { csv: '', parquet: '', arrow: '' };
    for (const k of Object.keys(files) as (keyof typeof files)[]) {
      const r = await flockctl(['submit', files[k]], env);
      expect(r.code, r.stderr).toBe(0);
      ids[k] = r.stdout.trim().split('\n').at(-1)!;
    }
    expect((await jobs(coord.url)).map((j) => j.id).sort()).toEqual(Object.values(ids).sort());

    // Two headless contributors and one volunteer tab, each on its own job.
    for (const k of ['parquet', 'arrow'] as const) {
      const w = spawn(process.execPath, [BIN, 'worker', coord.url, '--job', ids[k]], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
      w.stderr!.resume();
      workers.push(w);
    }
    const tab = await browser.newPage();
    await tab.goto(`${coord.url}/?job=${ids.csv}&autostart=1&backend=wasm`);
    await expect(tab.locator('#job-name')).toHaveText('Species from measurements', { timeout: 60_000 });

    await expect.poll(async () => (await jobs(coord!.url)).filter((j) => j.status === 'finished').length, { timeout: 180_000, intervals: [1000] }).toBe(3);
    await tab.screenshot({ path: 'e2e/artifacts/own-data-volunteer.png', fullPage: true });
    const final = new Map((await jobs(coord.url)).map((j) => [j.id, j]));
    const csvAcc = final.get(ids.csv)!.metrics.testAccuracy!;
    const pqAcc = final.get(ids.parquet)!.metrics.testAccuracy!;
    const arrowMae = final.get(ids.arrow)!.metrics.testMae!;
    // The bars: tabular classes >= 90%, 6,000 MNIST digits on an MLP >= 88%, regression MAE <= 0.15 (target std ~1.2).
    expect(csvAcc).toBeGreaterThanOrEqual(0.9);
    expect(pqAcc).toBeGreaterThanOrEqual(0.88);
    expect(arrowMae).toBeLessThanOrEqual(0.15);

    // Export each and score it again, as a user would, from the raw test files.
    for (const k of Object.keys(ids) as (keyof typeof ids)[]) {
      const r = await flockctl(['export', ids[k], '--out', path.join(work, 'export', k)], env);
      expect(r.code, r.stderr).toBe(0);
    }
    {
      const { model, meta } = await loadExport(path.join(work, 'export', 'csv'));
      const rows = parseCsv(await readFile(path.join(work, 'csv', 'test.csv')), { columns: true }) as Record<string, string>[];
      const pred = tf.tidy(() => (model.predict(tf.tensor2d(prepareRows(meta, rows), [rows.length, meta.featureNames.length])) as tf.Tensor).argMax(-1).dataSync());
      const acc = rows.filter((row, i) => meta.labels.classNames![pred[i]!] === row.species).length / rows.length;
      expect(Math.abs(acc - csvAcc)).toBeLessThanOrEqual(0.005);
      model.dispose();
    }
    {
      const { model, meta } = await loadExport(path.join(work, 'export', 'parquet'));
      const buf = await readFile(path.join(work, 'parquet', 'test.parquet'));
      const rows = (await parquetReadObjects({ file: buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) })) as Record<string, number>[];
      const pred = tf.tidy(() => (model.predict(tf.tensor2d(prepareRows(meta, rows), [rows.length, 784])) as tf.Tensor).argMax(-1).dataSync());
      const acc = rows.filter((row, i) => meta.labels.classNames![pred[i]!] === String(row.digit)).length / rows.length;
      expect(Math.abs(acc - pqAcc)).toBeLessThanOrEqual(0.005);
      model.dispose();
    }
    {
      const { model, meta } = await loadExport(path.join(work, 'export', 'arrow'));
      const table = tableFromIPC(await readFile(path.join(work, 'arrow', 'test.arrows')));
      const rows = table.toArray().map((r) => r.toJSON() as Record<string, number>);
      const pred = tf.tidy(() => (model.predict(tf.tensor2d(prepareRows(meta, rows), [rows.length, 4])) as tf.Tensor).dataSync());
      const mae = rows.reduce((s, row, i) => s + Math.abs(pred[i]! - row.y!), 0) / rows.length;
      expect(Math.abs(mae - arrowMae)).toBeLessThanOrEqual(0.005 * arrowMae + 1e-6);
      model.dispose();
    }

    // The dashboard: the three jobs, and a job-file upload refused next to the file field.
    const admin = await browser.newPage();
    await admin.goto(`${coord.url}/admin/#token=${TOKEN}`);
    await expect(admin.locator('#jobs tbody tr')).toHaveCount(3);
    await admin.screenshot({ path: 'e2e/artifacts/own-data-dashboard.png', fullPage: true });
    await admin.click('#new-job');
    await admin.check('input[name="source"][value="file"]');
    const bad = path.join(work, 'csv', 'ragged.csv');
    await writeFile(bad, 'f0,f1,f2,f3,f4,f5,color,species\n1,2,3,4,5,6,red,setosa\n1,2,3\n');
    const badJob = path.join(work, 'csv', 'ragged-job.json');
    const job = JSON.parse(await readFile(files.csv, 'utf8')) as Record<string, unknown>;
    await writeFile(badJob, JSON.stringify({ ...job, name: 'Ragged', data: { train: 'ragged.csv', test: 'test.csv', label: 'species' } }));
    await admin.setInputFiles('#c-jobfile', badJob);
    await admin.setInputFiles('#c-files', [bad, path.join(work, 'csv', 'test.csv'), path.join(work, 'csv', 'model.json')]);
    await admin.click('#create button[type="submit"]');
    await expect(admin.locator('#c-file-error')).toContainText('ragged.csv', { timeout: 30_000 });
    await expect(admin.locator('#c-file-error')).toContainText('line 3');
    await admin.screenshot({ path: 'e2e/artifacts/own-data-upload-refused.png', fullPage: true });
    // The same form with good files creates the job and opens its page.
    await admin.setInputFiles('#c-jobfile', files.csv);
    await admin.setInputFiles('#c-files', ['train.csv', 'test.csv', 'model.json'].map((f) => path.join(work, 'csv', f)));
    await admin.click('#create button[type="submit"]');
    await expect(admin).toHaveURL(/#\/job\/species-from-measurements-2$/, { timeout: 30_000 });
    expect((await jobs(coord.url)).length).toBe(4);
  } finally {
    for (const w of workers) w.kill('SIGINT');
    await coord?.stop('SIGTERM');
    rmSync(work, { recursive: true, force: true });
  }
});
