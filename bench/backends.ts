// Backend benchmark (not a timed test): in one headless Chromium run it records the gradient
// coverage matrix (case x backend: status, max abs and max relative difference vs cpu), the
// isolated gradient-step samples/s of the MNIST MLP and CNN demos on cpu, wasm and webgpu, and the
// backend a real volunteer tab's start-up probe picks for each demo; writes
// bench/results/backends.json and prints markdown tables. Usage: npm run bench:backends [-- --ms 3000]

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import path from 'node:path';
import type { Page } from '@playwright/test';
import { launchBrowser } from '../e2e/browser.ts';
import { startCoordinatorProcess } from '../e2e/coordinator-process.ts';
import { initNodeBackend } from '../shared/training/node-backend.ts';
import { demoConfig, type DemoName } from '../server/jobs/demos.ts';
import { REL_TOLERANCE, type CoverageRow } from '../shared/kernels/coverage/run.ts';
import type { ProbeFigures } from '../shared/training/probe.ts';
import type { ProbeOutcome } from '../shared/training/backend-choice.ts';
import { MNIST_STEP, type StepSpec } from '../shared/training/gradient-step.ts';

const args = process.argv.slice(2);
const arg = (name: string): string | undefined => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const measureMs = Number(arg('ms') ?? 3000);
const BATCH = 64;
const BACKENDS = ['cpu', 'wasm', 'webgpu'] as const;
const DEMOS: { demo: DemoName; model: string }[] = [{ demo: 'mnist-mlp', model: 'MLP 784-128-10' }, { demo: 'mnist-cnn', model: 'CNN conv8-pool-conv16-pool-dense10' }];
const SPEC: StepSpec = MNIST_STEP;

interface CoverageState {
  done: boolean;
  adapter: unknown;
  backends: string[];
  rows: CoverageRow[];
  error: string | null;
  ms: number;
}
interface BenchApi {
  gradientStep(topology: unknown, spec: StepSpec, backend: string, batchSize: number, budgetMs: number): Promise<ProbeFigures | { error: string }>;
}
interface TabView {
  fatal: string | null;
  backend: { backend: string; reason: string; probes: ProbeOutcome[] } | null;
}

async function volunteerChoice(page: Page, demo: DemoName): Promise<Record<string, unknown>> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'flock-bench-backends-'));
  const coord = await startCoordinatorProcess({ FLOCK_DATA_DIR: dataDir, FLOCK_DEMO: demo });
  try {
    const t0 = Date.now();
    await page.goto(`${coord.url}/?autostart=1`);
    await page.waitForFunction(() => {
      const f = (window as unknown as { flock: TabView }).flock;
      return (f.backend?.probes.length ?? 0) > 0 || f.fatal !== null;
    }, null, { timeout: 120_000 });
    const view = await page.evaluate(() => (window as unknown as { flock: TabView }).flock);
    const result = { demo, chosen: view.backend?.backend ?? null, reason: view.backend?.reason ?? view.fatal, secondsToChoice: (Date.now() - t0) / 1000, probes: view.backend?.probes ?? [] };
    await page.goto('about:blank');
    return result;
  } finally {
    await coord.stop('SIGTERM');
    rmSync(dataDir, { recursive: true, force: true });
  }
}

await initNodeBackend('wasm');
const topologies = new Map(DEMOS.map((d) => [d.demo, demoConfig(d.demo).modelTopology]));
const dataDir = mkdtempSync(path.join(tmpdir(), 'flock-bench-backends-'));
const coord = await startCoordinatorProcess({ FLOCK_DATA_DIR: dataDir, FLOCK_DEMO: 'none' });
const browser = await launchBrowser();
let out: Record<string, unknown>;
try {
  const page = await browser.newPage();
  // 1. The coverage matrix.
  process.stdout.write('coverage matrix ... ');
  await page.goto(`${coord.url}/coverage/`);
  await page.waitForFunction(() => (window as unknown as { flockCoverage?: { done: boolean } }).flockCoverage?.done === true, null, { timeout: 300_000 });
  const coverage = await page.evaluate(() => (window as unknown as { flockCoverage: CoverageState }).flockCoverage);
  console.log(`${(coverage.ms / 1000).toFixed(1)} s`);

  // 2. Gradient-step throughput per model x backend, same browser, same page.
  const steps: Record<string, unknown>[] = [];
  for (const d of DEMOS) {
    for (const backend of BACKENDS) {
      process.stdout.write(`${d.demo} on ${backend} ... `);
      const r = await page.evaluate(
        ([topology, spec, b, batch, ms]) => (window as unknown as { flockBench: BenchApi }).flockBench.gradientStep(topology, spec, b, batch, ms),
        [topologies.get(d.demo), SPEC, backend, BATCH, measureMs] as const,
      );
      const row = 'error' in r ? { demo: d.demo, model: d.model, backend, batchSize: BATCH, error: r.error } : { demo: d.demo, model: d.model, backend, batchSize: BATCH, samplesPerSec: r.samplesPerSec, steps: r.steps, warmupMs: r.warmupMs };
      steps.push(row);
      console.log('error' in r ? `error ${r.error}` : `${Math.round(r.samplesPerSec)} samples/s`);
    }
  }

  // 3. What a real volunteer tab's start-up probe picks for each demo.
  const tab = await browser.newPage();
  const probe: Record<string, unknown>[] = [];
  for (const d of DEMOS) {
    process.stdout.write(`volunteer tab probe on ${d.demo} ... `);
    const r = await volunteerChoice(tab, d.demo);
    probe.push(r);
    console.log(`${r.chosen} (${r.reason})`);
  }

  const summary = Object.fromEntries(coverage.backends.map((b) => {
    const rows = coverage.rows.filter((r) => r.backend === b);
    return [b, {
      cases: rows.length,
      pass: rows.filter((r) => r.status === 'pass').length,
      missingKernels: [...new Set(rows.filter((r) => r.status === 'missing-kernel').map((r) => r.kernel))],
      worstMaxRelDiff: Math.max(0, ...rows.map((r) => r.maxRelDiff ?? 0)),
      worstMaxAbsDiff: Math.max(0, ...rows.map((r) => r.maxAbsDiff ?? 0)),
      tolerance: REL_TOLERANCE[b] ?? null,
    }];
  }));
  out = {
    benchmark: 'backends',
    at: new Date().toISOString(),
    machine: { cpus: cpus().length, cpu: cpus()[0]?.model, node: process.version, browser: browser.version() },
    adapter: coverage.adapter,
    coverage: { seconds: coverage.ms / 1000, error: coverage.error, summary, rows: coverage.rows },
    gradientStep: { batchSize: BATCH, measureMs, runs: steps },
    probe,
  };
  mkdirSync('bench/results', { recursive: true });
  writeFileSync('bench/results/backends.json', JSON.stringify(out, null, 2) + '\n');

  const e = (x: number | null | undefined): string => (typeof x === 'number' ? x.toExponential(1) : '–');
  console.log(`\n### Gradient coverage (status, max rel / max abs diff vs cpu)\n\n| case | ${coverage.backends.join(' | ')} |\n|---|${coverage.backends.map(() => '---').join('|')}|`);
  for (const name of [...new Set(coverage.rows.map((r) => r.case))]) {
    const cells = coverage.backends.map((b) => {
      const r = coverage.rows.find((x) => x.case === name && x.backend === b);
      if (!r) return '–';
      const status = r.status === 'missing-kernel' ? `missing ${r.kernel}` : r.status;
      return `${status} ${e(r.maxRelDiff)} / ${e(r.maxAbsDiff)}`;
    });
    console.log(`| ${name} | ${cells.join(' | ')} |`);
  }
  console.log(`| **pass** | ${coverage.backends.map((b) => `${summary[b]!.pass}/${summary[b]!.cases}`).join(' | ')} |`);
  console.log(`\n### Gradient step, batch ${BATCH}, samples/s (same browser run)\n\n| model | ${BACKENDS.join(' | ')} |\n|---|${BACKENDS.map(() => '---').join('|')}|`);
  for (const d of DEMOS) {
    const cells = BACKENDS.map((b) => {
      const r = steps.find((s) => s.demo === d.demo && s.backend === b);
      return r && typeof r.samplesPerSec === 'number' ? Math.round(r.samplesPerSec).toLocaleString('en-US') : `error`;
    });
    console.log(`| ${d.model} | ${cells.join(' | ')} |`);
  }
  console.log(`\n### Volunteer tab's start-up probe\n\n| demo | chosen | probe figures |\n|---|---|---|`);
  for (const p of probe) console.log(`| ${p.demo} | ${p.chosen} | ${String(p.reason).replace(/\|/g, '/')} |`);
} finally {
  await browser.close();
  await coord.stop('SIGTERM');
  rmSync(dataDir, { recursive: true, force: true });
}
process.exit(0);
