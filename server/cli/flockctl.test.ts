// flockctl against a real coordinator on port 0: every command as a real process, its output, its
// errors (one line, no stack) and its exit codes.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseCsv } from 'csv-parse/sync';
import { tf } from '../../shared/training/tf.ts';
import { initNodeBackend } from '../../shared/training/node-backend.ts';
import { startCoordinator, type Coordinator } from '../coordinator.ts';
import { silentLog, waitFor } from '../faults/fixtures.ts';
import { prepareRows, SPECIES, writeCsvJob } from '../jobs/testing/own-data.ts';
import type { StoreMeta } from '../data/store/store-meta.ts';

const BIN = path.join(path.dirname(fileURLToPath(import.meta.url)), 'flockctl.js');
const TOKEN = 'cli-test-token-0123456789';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function flockctl(args: string[], env: Record<string, string> = {}, opts: { signalAfter?: () => Promise<void> } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, FLOCK_URL: '', FLOCK_ADMIN_TOKEN: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    p.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    p.on('exit', (code) => resolve({ code, stdout, stderr }));
    if (opts.signalAfter) void opts.signalAfter().then(() => p.kill('SIGINT'));
  });
}

/** One clear line on stderr: no stack frames, no minified source. */
function assertOneLine(r: Run, re: RegExp): void {
  assert.equal(r.code, 1, `exit code (stderr: ${r.stderr})`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line, got: ${r.stderr}`);
  assert.match(lines[0]!, /^flockctl: /);
  assert.match(lines[0]!, re);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
}

let coord: Coordinator;
let dir: string;
let jobFile: string;
let env: Record<string, string>;
let jobId: string;

before(async () => {
  await initNodeBackend('wasm');
  dir = await mkdtemp(path.join(os.tmpdir(), 'flockctl-'));
  coord = await startCoordinator({ port: 0, host: '127.0.0.1', dataDir: path.join(dir, 'data'), clientDir: path.join(dir, 'no-pages'), demo: null, adminToken: TOKEN, log: silentLog, sweepIntervalMs: 200 });
  jobFile = await writeCsvJob(path.join(dir, 'csv'));
  env = { FLOCK_URL: coord.url, FLOCK_ADMIN_TOKEN: TOKEN };
});

after(async () => {
  await coord.close();
  await rm(dir, { recursive: true, force: true });
});

test('submit: validates locally, uploads, prints the job id on its last line', async () => {
  const r = await flockctl(['submit', jobFile], env);
  assert.equal(r.code, 0, r.stderr + (await readFile(path.join(dir, 'csv', 'model.json'), 'utf8')).slice(0, 300));
  jobId = r.stdout.trim().split('\n').at(-1)!;
  assert.equal(jobId, 'species-from-measurements');
  const job = coord.registry.get(jobId)!;
  assert.ok(job, 'job created');
  const d = job.descriptor();
  assert.deepEqual(d.data.featureShape, [9]);
  assert.equal(d.data.features.dtype, 'float32');
  assert.deepEqual(d.data.target, { kind: 'classes', numClasses: 3, dtype: 'uint8', classNames: [...SPECIES] });
  assert.match(r.stderr, /validated: 1,500 training and 500 test examples, 9 features, model of 211 parameters/);
  // A second submit of the same file makes a second job, with its own id.
  const again = await flockctl(['submit', '--no-validate', jobFile], env);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(again.stdout.trim().split('\n').at(-1), 'species-from-measurements-2');
});

test('submit: refusals are one line with exit 1, and create nothing', async () => {
  const before = coord.registry.all().length;
  assertOneLine(await flockctl(['submit', path.join(dir, 'nope.json')], env), /cannot read the job file/);
  const bad = path.join(dir, 'csv', 'bad.csv');
  await writeFile(bad, 'f0,f1,f2,f3,f4,f5,color,species\n1,2,3,4,5,6,red,setosa\n1,2,3,4,5,red,setosa\n');
  const badJob = path.join(dir, 'csv', 'bad-job.json');
  const job = JSON.parse(await readFile(jobFile, 'utf8')) as Record<string, unknown>;
  await writeFile(badJob, JSON.stringify({ ...job, data: { train: 'bad.csv', test: 'test.csv', label: 'species' } }));
  assertOneLine(await flockctl(['submit', badJob], env), /bad\.csv.*line 3/);
  // The coordinator refuses the same file on its own (local validation skipped), naming the key.
  assertOneLine(await flockctl(['submit', '--no-validate', badJob], env), /bad\.csv.*line 3.*"data"/);
  await writeFile(badJob, JSON.stringify({ ...job, task: 'regression' }));
  assertOneLine(await flockctl(['submit', badJob], env), /softmax.*regression/);
  assertOneLine(await flockctl(['submit', jobFile], { ...env, FLOCK_ADMIN_TOKEN: 'wrong-token' }), /refused the admin token/);
  assertOneLine(await flockctl(['submit', jobFile], { ...env, FLOCK_ADMIN_TOKEN: '' }), /needs the admin token/);
  assertOneLine(await flockctl(['jobs'], { FLOCK_URL: 'http://127.0.0.1:1' }), /cannot reach the coordinator at http:\/\/127\.0\.0\.1:1/);
  assertOneLine(await flockctl(['jobs', '--url', 'not a url']), /not a URL/);
  assert.equal(coord.registry.all().length, before);
  const usage = await flockctl(['frobnicate'], env);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /unknown command 'frobnicate'/);
});

test('jobs, pause, resume, cancel', async () => {
  const table = await flockctl(['jobs'], env);
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /^ID\s+NAME\s+STATUS/);
  assert.match(table.stdout, new RegExp(`${jobId}\\s+Species from measurements\\s+running`));
  const json = await flockctl(['jobs', '--json'], env);
  const list = JSON.parse(json.stdout) as { id: string }[];
  assert.deepEqual(list.map((j) => j.id), coord.registry.all().map((j) => j.id));
  const other = 'species-from-measurements-2';
  assert.match((await flockctl(['pause', other], env)).stdout, /paused/);
  assert.equal(coord.registry.get(other)!.status, 'paused');
  assert.match((await flockctl(['resume', other], env)).stdout, /resumed/);
  assert.match((await flockctl(['cancel', other], env)).stdout, /cancelled/);
  assert.equal(coord.registry.get(other)!.status, 'cancelled');
  assertOneLine(await flockctl(['pause', 'nope'], env), /no job nope/);
});

test('worker trains the job, Ctrl-C hands back its lease; export reproduces the reported accuracy', async () => {
  const job = coord.registry.get(jobId)!;
  const r = await flockctl(['worker', coord.url, '--job', jobId], {}, {
    signalAfter: () => waitFor(() => job.status === 'finished' || job.summary().updates.applied >= 150, 120_000, 'the CLI worker to train'),
  });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /contributing to .* with 1 worker loop/);
  assert.match(r.stderr, /stopped|finished/);
  await waitFor(() => job.outstandingLeases === 0, 5000, 'the lease to be handed back');
  await job.evaluateNow();
  await job.settle();
  const reported = job.summary().metrics.testAccuracy!;
  assert.ok(reported >= 0.85, `test accuracy ${reported}`);

  const out = path.join(dir, 'export');
  const ex = await flockctl(['export', jobId, '--out', out], env);
  assert.equal(ex.code, 0, ex.stderr);
  for (const f of ['model.json', 'weights.bin', 'preprocessing.json', 'history.csv']) assert.ok((await stat(path.join(out, f))).size > 0, f);
  const modelJson = JSON.parse(await readFile(path.join(out, 'model.json'), 'utf8')) as { modelTopology: object; weightsManifest: { weights: tf.io.WeightsManifestEntry[] }[] };
  const weights = await readFile(path.join(out, 'weights.bin'));
  const model = await tf.loadLayersModel(tf.io.fromMemory({ modelTopology: modelJson.modelTopology, weightSpecs: modelJson.weightsManifest[0]!.weights, weightData: new Uint8Array(weights).buffer }));
  const meta = JSON.parse(await readFile(path.join(out, 'preprocessing.json'), 'utf8')) as StoreMeta;
  const rows = parseCsv(await readFile(path.join(dir, 'csv', 'test.csv')), { columns: true }) as Record<string, string>[];
  const x = tf.tensor2d(prepareRows(meta, rows), [rows.length, meta.featureNames.length]);
  const predicted = (model.predict(x) as tf.Tensor).argMax(-1).dataSync();
  const hits = rows.filter((row, i) => meta.labels.classNames![predicted[i]!] === row.species).length;
  x.dispose();
  model.dispose();
  const accuracy = hits / rows.length;
  // The checkpoint is the version evaluated last; the exported model must score what was reported.
  assert.ok(Math.abs(accuracy - reported) <= 0.005, `exported model ${accuracy} vs reported ${reported}`);
  const history = await readFile(path.join(out, 'history.csv'), 'utf8');
  assert.match(history, /^series,version/);
  assertOneLine(await flockctl(['export', 'nope', '--out', out], env), /no job nope/);
});
