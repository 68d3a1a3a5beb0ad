// Training benchmark (not a timed test): for each run (model x backend x tabs) it starts a fresh
// coordinator, measures the backend's isolated gradient step in the same browser (?probe=), then
// lets N volunteer tabs train until the target test accuracy (--target, default 0.97) or the time
// budget, and writes bench/results/train.json.
// Usage: npm run bench:train [-- --only mlp-wasm-2 --budget 180 --target 0.98 --aggregation local --out train-98]

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import path from 'node:path';
import { launchBrowser } from '../e2e/browser.ts';
import { startCoordinatorProcess } from '../e2e/coordinator-process.ts';

interface RunSpec {
  readonly id: string;
  readonly demo: 'mnist-mlp' | 'mnist-cnn';
  readonly backend: 'wasm' | 'webgpu' | 'cpu';
  readonly tabs: number;
  readonly budgetS: number;
}

const args = process.argv.slice(2);
const arg = (name: string): string | undefined => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const budget = Number(arg('budget') ?? 180);
/** `--tab-params prefetch=0` appends to every volunteer tab's URL (A/B comparisons). */
const tabParams = arg('tab-params') ? `&${arg('tab-params')}` : '';
const outName = arg('out') ?? 'train';
const TARGET = Number(arg('target') ?? 0.97);
/** `--aggregation local` sets the demo job's FLOCK_AGGREGATION (default: the demo's robust buffered). */
const AGGREGATION = arg('aggregation');
if (!(TARGET > 0 && TARGET < 1)) throw new Error(`--target must be a test accuracy in (0, 1), got ${arg('target')}`);
const pct = `${+(TARGET * 100).toFixed(2)}%`;

const ALL: RunSpec[] = [
  { id: 'mlp-wasm-1', demo: 'mnist-mlp', backend: 'wasm', tabs: 1, budgetS: budget },
  { id: 'mlp-wasm-2', demo: 'mnist-mlp', backend: 'wasm', tabs: 2, budgetS: budget },
  { id: 'mlp-webgpu-1', demo: 'mnist-mlp', backend: 'webgpu', tabs: 1, budgetS: Math.min(budget, 90) },
  { id: 'cnn-wasm-1', demo: 'mnist-cnn', backend: 'wasm', tabs: 1, budgetS: budget },
  { id: 'cnn-wasm-2', demo: 'mnist-cnn', backend: 'wasm', tabs: 2, budgetS: budget },
  { id: 'cnn-webgpu-1', demo: 'mnist-cnn', backend: 'webgpu', tabs: 1, budgetS: Math.min(budget, 60) },
];
const only = arg('only')?.split(',');
const runs = only ? ALL.filter((r) => only.includes(r.id)) : ALL;

interface JobJson {
  id: string;
  batchSize: number;
  aggregation: { mode: string; bufferSize: number; localSteps: number | null; text: string };
  status: string;
  version: number;
  samplesApplied: number;
  updates: { applied: number; refused: Record<string, number> };
  bytes: { down: number; up: number };
  metrics: { testAccuracy: number | null };
}
interface Evaluation {
  version: number;
  testAccuracy: number;
  at: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function runOne(spec: RunSpec): Promise<Record<string, unknown>> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'flock-bench-'));
  const coord = await startCoordinatorProcess({ FLOCK_DATA_DIR: dataDir, FLOCK_DEMO: spec.demo, FLOCK_TARGET_ACCURACY: String(TARGET), FLOCK_MAX_EPOCHS: '20', ...(AGGREGATION ? { FLOCK_AGGREGATION: AGGREGATION } : {}) });
  const browser = await launchBrowser();
  try {
    const ctx = await browser.newContext();
    // 1. Isolated gradient step, same browser, same backend, in a Web Worker like the real tab.
    const probe = await ctx.newPage();
    // The job's own minibatch size (a local lease's inner steps use it too).
    const probeBatch = ((await (await fetch(`${coord.url}/api/jobs`)).json()) as JobJson[])[0]!.batchSize;
    await probe.goto(`${coord.url}/?probe=${spec.demo}&backend=${spec.backend}&batch=${probeBatch}&ms=5000`);
    await probe.waitForFunction(() => (window as unknown as { flock: { probe: unknown; fatal: unknown } }).flock.probe || (window as unknown as { flock: { fatal: unknown } }).flock.fatal, null, { timeout: 120_000 });
    const iso = await probe.evaluate(() => (window as unknown as { flock: { probe: { samplesPerSec: number; warmupMs: number } | null; fatal: string | null } }).flock);
    await probe.close();
    if (!iso.probe) throw new Error(`probe failed: ${iso.fatal}`);

    // 2. End to end: N tabs train until the target or the budget.
    const t0 = Date.now();
    const tabs = [];
    for (let i = 0; i < spec.tabs; i++) {
      const p = await ctx.newPage();
      await p.goto(`${coord.url}/?autostart=1&backend=${spec.backend}${tabParams}`);
      tabs.push(p);
    }
    let job: JobJson;
    // (time, samples applied) once a second: the steady rate leaves out the tabs' start-up (page,
    // backend choice, first lease) and the end (final evaluation), which no pipeline can overlap.
    const seen: { t: number; samples: number }[] = [];
    for (;;) {
      await sleep(1000);
      job = ((await (await fetch(`${coord.url}/api/jobs`)).json()) as JobJson[])[0]!;
      seen.push({ t: Date.now(), samples: job.samplesApplied });
      if (job.status === 'finished' || Date.now() - t0 > spec.budgetS * 1000) break;
    }
    const firstMoved = seen.findIndex((s) => s.samples > 0);
    const lastMoved = seen.findIndex((s) => s.samples === job.samplesApplied);
    const steady = firstMoved >= 0 && lastMoved > firstMoved
      ? (seen[lastMoved]!.samples - seen[firstMoved]!.samples) / ((seen[lastMoved]!.t - seen[firstMoved]!.t) / 1000)
      : null;
    const elapsedS = (Date.now() - t0) / 1000;
    // Each tab's own account: time inside the gradient (or local) step, and samples it computed.
    const tabStats = await Promise.all(tabs.map((p) => p.evaluate(() => (window as unknown as { flock: { stats: { computeMs: number; samplesDone: number } | null } }).flock.stats).catch(() => null)));
    const hist = (await (await fetch(`${coord.url}/api/jobs/${spec.demo}/metrics`)).json()) as { evaluations: Evaluation[] };
    const hit = hist.evaluations.find((e) => e.testAccuracy >= TARGET);
    const best = Math.max(0, ...hist.evaluations.map((e) => e.testAccuracy));
    const e2e = job.samplesApplied / elapsedS;
    // A version is bufferSize gradients (x localSteps minibatches each in local mode).
    const perVersion = job.batchSize * job.aggregation.bufferSize * (job.aggregation.localSteps ?? 1);
    const result = {
      run: spec.id,
      model: spec.demo,
      backend: spec.backend,
      tabs: spec.tabs,
      targetAccuracy: TARGET,
      reachedTarget: Boolean(hit),
      secondsToTarget: hit ? (hit.at - t0) / 1000 : null,
      samplesToTarget: hit ? hit.version * perVersion : null,
      aggregation: job.aggregation.text,
      bestTestAccuracy: best,
      elapsedS,
      samplesApplied: job.samplesApplied,
      endToEndSamplesPerSec: e2e,
      isolatedSamplesPerSecPerTab: iso.probe.samplesPerSec,
      pipelineEfficiency: e2e / (iso.probe.samplesPerSec * spec.tabs),
      // From the first applied gradient to the last (polled once a second): the pipeline alone.
      steadySamplesPerSec: steady,
      steadyEfficiency: steady === null ? null : steady / (iso.probe.samplesPerSec * spec.tabs),
      startupS: firstMoved >= 0 ? (seen[firstMoved]!.t - t0) / 1000 : null,
      // The tabs' compute time over their working time (from the first applied gradient to the end):
      // the volunteer page's "computing N% of the time", over the whole run.
      tabBusyFraction: firstMoved >= 0 && tabStats.every((t) => t) ? tabStats.reduce((a, t) => a + t!.computeMs, 0) / spec.tabs / (Date.now() - seen[firstMoved]!.t) : null,
      tabComputeSamplesPerSec: tabStats.every((t) => t) ? tabStats.reduce((a, t) => a + t!.samplesDone / (t!.computeMs / 1000), 0) / spec.tabs : null,
      probeWarmupMs: iso.probe.warmupMs,
      probeBatch,
      updatesApplied: job.updates.applied,
      updatesRefused: job.updates.refused,
      bytesDownPerSample: job.bytes.down / Math.max(1, job.samplesApplied),
      bytesUpPerSample: job.bytes.up / Math.max(1, job.samplesApplied),
    };
    await ctx.close();
    return result;
  } finally {
    await browser.close();
    await coord.stop('SIGTERM');
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const results: Record<string, unknown>[] = [];
for (const spec of runs) {
  process.stdout.write(`${spec.id} ... `);
  try {
    const r = await runOne(spec);
    results.push(r);
    console.log(JSON.stringify(r));
  } catch (err) {
    results.push({ run: spec.id, error: (err as Error).message.slice(0, 500) });
    console.log(`failed: ${(err as Error).message.slice(0, 300)}`);
  }
}

mkdirSync('bench/results', { recursive: true });
const out = { benchmark: 'train', tabParams, at: new Date().toISOString(), machine: { cpus: cpus().length, cpu: cpus()[0]?.model, node: process.version }, targetAccuracy: TARGET, runs: results };
writeFileSync(`bench/results/${outName}.json`, JSON.stringify(out, null, 2) + '\n');

console.log(`\n| run | reached ${pct} | s to ${pct} | samples to ${pct} | best acc | e2e samples/s | isolated samples/s/tab | efficiency | steady efficiency | tab busy | applied | refused | B down/sample | B up/sample |`);
console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
for (const r of results) {
  if ('error' in r) {
    console.log(`| ${r.run} | error: ${String(r.error).slice(0, 80)} |`);
    continue;
  }
  const n = (x: unknown, d = 0): string => (typeof x === 'number' ? x.toFixed(d) : '–');
  const refused = Object.values(r.updatesRefused as Record<string, number>).reduce((a, b) => a + b, 0);
  console.log(`| ${r.run} | ${r.reachedTarget ? 'yes' : 'no'} | ${n(r.secondsToTarget, 1)} | ${n(r.samplesToTarget)} | ${n(r.bestTestAccuracy, 4)} | ${n(r.endToEndSamplesPerSec)} | ${n(r.isolatedSamplesPerSecPerTab)} | ${n(r.pipelineEfficiency, 2)} | ${n(r.steadyEfficiency, 2)} | ${n(r.tabBusyFraction, 2)} | ${r.updatesApplied} | ${refused} | ${n(r.bytesDownPerSample)} | ${n(r.bytesUpPerSample)} |`);
}
process.exit(0);
