// Pipeline and compression benchmark (not a timed test). One run, side by side: for each variant
// (worker loop mode x wire encodings) a fresh coordinator process (the real CLI, MNIST MLP demo,
// same seed) and N Node workers running the real worker loop on tfjs WASM train until the target
// test accuracy or the budget. The isolated gradient step of the same model is measured in this
// process first (same backend, same batch), so efficiency = end-to-end samples/s / isolated.
// Writes bench/results/wire.json.
// Usage: npm run bench:wire [-- --budget 120 --workers 1 --only base,pipe --target 0.97]

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import { startCoordinatorProcess } from '../e2e/coordinator-process.ts';
import { startNodeWorker, type NodeWorker } from '../shared/training/node-worker.ts';
import { initNodeBackend } from '../shared/training/node-backend.ts';
import { buildModel } from '../shared/training/model.ts';
import { computeGradients, MNIST_STEP } from '../shared/training/gradient-step.ts';
import { demoConfig } from '../server/jobs/demos.ts';
import { tf } from '../shared/training/tf.ts';

interface Variant {
  readonly id: string;
  readonly pipeline: boolean;
  readonly prefetch: boolean;
  /** FLOCK_COMPRESSION; '' = float32 both ways. */
  readonly compression: string;
  /** The worker announces every encoding (deltas, compression) and keeps a row cache; false: the loop as it was (f32 only, no cache, raw rows). */
  readonly wire: boolean;
  /** With `wire`: rows as they are (no DEFLATE), to show what row compression saves. */
  readonly rawRows?: boolean;
  /** With `wire`: the worker's row cache in bytes (default: the loop's). */
  readonly rowCacheBytes?: number;
  /** FLOCK_AGGREGATION; absent = the demo's default (robust buffered). */
  readonly aggregation?: string;
}

const args = process.argv.slice(2);
const arg = (name: string): string | undefined => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const BUDGET_S = Number(arg('budget') ?? 120);
const WORKERS = Number(arg('workers') ?? 1);
const TARGET = Number(arg('target') ?? 0.97);
const OUT = arg('out') ?? 'wire';

const ALL: Variant[] = [
  { id: 'base', pipeline: false, prefetch: false, compression: '', wire: false },
  { id: 'pipe', pipeline: true, prefetch: false, compression: '', wire: false },
  { id: 'pipe+prefetch', pipeline: true, prefetch: true, compression: '', wire: false },
  { id: 'pipe+cache+delta', pipeline: true, prefetch: false, compression: '', wire: true },
  { id: 'pipe-f16', pipeline: true, prefetch: false, compression: 'weights=f16,gradients=f16', wire: true },
  { id: 'pipe-int8', pipeline: true, prefetch: false, compression: 'weights=int8,gradients=int8', wire: true },
  { id: 'pipe-int8-topk1%', pipeline: true, prefetch: false, compression: 'weights=int8,gradients=topk:0.01', wire: true },
  // Local steps (DiLoCo): one message per localSteps minibatches.
  { id: 'local-cache+delta', pipeline: true, prefetch: false, compression: '', wire: true, aggregation: 'local' },
  { id: 'local-int8-rawrows', pipeline: true, prefetch: false, compression: 'weights=int8,gradients=int8', wire: true, rawRows: true, aggregation: 'local' },
  { id: 'local-int8', pipeline: true, prefetch: false, compression: 'weights=int8,gradients=int8', wire: true, aggregation: 'local' },
  { id: 'local-int8-cache64', pipeline: true, prefetch: false, compression: 'weights=int8,gradients=int8', wire: true, rowCacheBytes: 64 * 1024 * 1024, aggregation: 'local' },
];
const only = arg('only')?.split(',');
const variants = only ? ALL.filter((v) => only.includes(v.id)) : ALL;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Samples/s of the bare gradient step (no network, no coordinator), batch 128, after a warm-up. */
async function isolatedStep(ms: number): Promise<number> {
  const cfg = demoConfig('mnist-mlp');
  const model = await buildModel(cfg.modelTopology);
  const n = cfg.batchSize;
  const batch = { x: new Uint8Array(n * 784).map((_, i) => (i * 131) % 256), y: new Uint8Array(n).map((_, i) => i % 10), numSamples: n };
  for (let i = 0; i < 5; i++) await computeGradients(model, MNIST_STEP, batch);
  const t0 = performance.now();
  let samples = 0;
  while (performance.now() - t0 < ms) {
    await computeGradients(model, MNIST_STEP, batch);
    samples += n;
  }
  const rate = (samples * 1000) / (performance.now() - t0);
  model.dispose();
  return rate;
}

interface JobJson {
  id: string;
  status: string;
  batchSize: number;
  samplesApplied: number;
  updates: { applied: number; refused: Record<string, number> };
  bytes: { down: number; up: number };
  aggregation: { mode: string; bufferSize: number; localSteps: number | null; text: string };
}

async function runOne(v: Variant, isolated: number): Promise<Record<string, unknown>> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'flock-bench-wire-'));
  const env: Record<string, string> = { FLOCK_DATA_DIR: dataDir, FLOCK_DEMO: 'mnist-mlp', FLOCK_TARGET_ACCURACY: String(TARGET), FLOCK_MAX_EPOCHS: '20' };
  if (v.compression) env.FLOCK_COMPRESSION = v.compression;
  if (v.aggregation) env.FLOCK_AGGREGATION = v.aggregation;
  const coord = await startCoordinatorProcess(env);
  const workers: NodeWorker[] = [];
  try {
    const t0 = Date.now();
    const wire = v.wire
      ? { ...(v.rawRows ? { rowCodecs: [] } : {}), ...(v.rowCacheBytes !== undefined ? { rowCacheBytes: v.rowCacheBytes } : {}) }
      : { codecs: ['f32' as const], rowCacheBytes: 0, rowCodecs: [] };
    for (let i = 0; i < WORKERS; i++) workers.push(await startNodeWorker(coord.url, { jobId: 'mnist-mlp', pipeline: v.pipeline, prefetch: v.prefetch, ...wire }));
    let job: JobJson;
    // Bytes moved so far, every 250 ms: the bytes to the target are read off this at the time it was hit.
    const moved: { at: number; bytes: number }[] = [];
    for (;;) {
      await sleep(250);
      job = ((await (await fetch(`${coord.url}/api/jobs`)).json()) as JobJson[])[0]!;
      moved.push({ at: Date.now(), bytes: job.bytes.down + job.bytes.up });
      if (job.status === 'finished' || Date.now() - t0 > BUDGET_S * 1000) break;
    }
    const elapsedS = (Date.now() - t0) / 1000;
    const hist = (await (await fetch(`${coord.url}/api/jobs/mnist-mlp/metrics`)).json()) as { evaluations: { version: number; testAccuracy: number; at: number }[] };
    const hit = hist.evaluations.find((e) => e.testAccuracy >= TARGET);
    const best = Math.max(0, ...hist.evaluations.map((e) => e.testAccuracy));
    const e2e = job.samplesApplied / elapsedS;
    const perSample = (job.bytes.down + job.bytes.up) / Math.max(1, job.samplesApplied);
    // A version is bufferSize gradients (x localSteps minibatches each in local mode).
    const samplesPerVersion = job.batchSize * job.aggregation.bufferSize * (job.aggregation.localSteps ?? 1);
    const samplesToTarget = hit ? hit.version * samplesPerVersion : null;
    const computeMs = workers.reduce((s, w) => s + w.loop.stats.computeMs, 0);
    return {
      variant: v.id,
      pipeline: v.pipeline,
      prefetch: v.prefetch,
      compression: v.compression || 'f32',
      aggregation: job.aggregation.text,
      rowCacheAndDeltas: v.wire,
      workers: WORKERS,
      reachedTarget: Boolean(hit),
      secondsToTarget: hit ? (hit.at - t0) / 1000 : null,
      samplesToTarget,
      bestTestAccuracy: best,
      elapsedS,
      samplesApplied: job.samplesApplied,
      endToEndSamplesPerSec: e2e,
      isolatedSamplesPerSec: isolated,
      efficiency: e2e / (isolated * WORKERS),
      computeShare: computeMs / (elapsedS * 1000 * WORKERS),
      updatesApplied: job.updates.applied,
      updatesRefused: job.updates.refused,
      bytesDownPerSample: job.bytes.down / Math.max(1, job.samplesApplied),
      bytesUpPerSample: job.bytes.up / Math.max(1, job.samplesApplied),
      // Read off the byte counts at the evaluation that first met the target (first sample at or after it).
      bytesToTarget: hit ? (moved.find((m) => m.at >= hit.at) ?? moved.at(-1))!.bytes : null,
      // The earlier estimate (the run's average bytes per sample x samples to the target), for comparison with older results.
      bytesToTargetAveraged: samplesToTarget !== null ? Math.round(perSample * samplesToTarget) : null,
    };
  } finally {
    await Promise.all(workers.map((w) => w.stop().catch(() => undefined)));
    await coord.stop('SIGTERM');
    rmSync(dataDir, { recursive: true, force: true });
  }
}

await initNodeBackend('wasm');
console.log(`backend ${tf.getBackend()}; isolated step ...`);
const isolated = await isolatedStep(4000);
console.log(`isolated gradient step: ${isolated.toFixed(0)} samples/s`);
const results: Record<string, unknown>[] = [];
for (const v of variants) {
  process.stdout.write(`${v.id} ... `);
  try {
    const r = await runOne(v, isolated);
    results.push(r);
    console.log(JSON.stringify(r));
  } catch (err) {
    results.push({ variant: v.id, error: (err as Error).message.slice(0, 500) });
    console.log(`failed: ${(err as Error).message.slice(0, 300)}`);
  }
}

mkdirSync('bench/results', { recursive: true });
const machine = { cpus: cpus().length, cpu: cpus()[0]?.model, memGiB: Math.round(totalmem() / 2 ** 30), node: process.version, backend: 'tfjs-backend-wasm (Node)' };
writeFileSync(`bench/results/${OUT}.json`, JSON.stringify({ benchmark: 'wire', at: new Date().toISOString(), machine, targetAccuracy: TARGET, workers: WORKERS, budgetS: BUDGET_S, isolatedSamplesPerSec: isolated, runs: results }, null, 2) + '\n');

const pct = `${+(TARGET * 100).toFixed(2)}%`;
const base = results.find((r) => r.variant === 'base' && !('error' in r));
console.log(`\n| variant | wire | samples/s | efficiency | s to ${pct} | samples to ${pct} | best acc | B/sample (down+up) | MB to ${pct} | bytes vs base |`);
console.log('|---|---|---|---|---|---|---|---|---|---|');
for (const r of results) {
  if ('error' in r) {
    console.log(`| ${r.variant} | error: ${String(r.error).slice(0, 80)} |`);
    continue;
  }
  const n = (x: unknown, d = 0): string => (typeof x === 'number' ? x.toFixed(d) : '–');
  const per = (r.bytesDownPerSample as number) + (r.bytesUpPerSample as number);
  const ratio = base && typeof base.bytesToTarget === 'number' && typeof r.bytesToTarget === 'number' ? `${(base.bytesToTarget / r.bytesToTarget).toFixed(1)}x fewer` : '–';
  console.log(`| ${r.variant} | ${r.compression} | ${n(r.endToEndSamplesPerSec)} | ${n(r.efficiency, 2)} | ${n(r.secondsToTarget, 1)} | ${n(r.samplesToTarget)} | ${n(r.bestTestAccuracy, 4)} | ${n(per)} | ${typeof r.bytesToTarget === 'number' ? (r.bytesToTarget / 1e6).toFixed(1) : '–'} | ${ratio} |`);
}
process.exit(0);
