// The coverage page (/coverage/): runs the gradient coverage matrix in this browser on cpu, wasm and
// webgpu and renders it; exposes window.flockCoverage (the rows) and window.flockBench (isolated
// gradient-step figures, the worker's backend probe, and one gradient on given weights and batch)
// for e2e/coverage.e2e.ts, bench/backends.ts and bench/spot-check-tolerances-browser.ts.

import { tf } from '../../shared/training/tf.ts';
import { adapterInfo, initTfjs, useBackend } from '../worker/backends.ts';
import { COVERAGE_CASES } from '../../shared/kernels/coverage/cases.ts';
import { runCoverage, type CoverageRow } from '../../shared/kernels/coverage/run.ts';
import { probeBackends, probeGradientStep, type ProbeFigures } from '../../shared/training/probe.ts';
import { decideBackend, PROBE_BUDGET_MS, probePlan, type BackendDecision, type ProbeOutcome } from '../../shared/training/backend-choice.ts';
import { computeGradients, type StepSpec } from '../../shared/training/gradient-step.ts';
import { buildModel, setWeightsFromPacked, weightSpecs } from '../../shared/training/model.ts';
import type { AdapterInfo, BackendName } from '../../shared/protocol/messages.ts';

interface CoverageState {
  done: boolean;
  adapter: AdapterInfo | null;
  backends: string[];
  rows: CoverageRow[];
  error: string | null;
  ms: number;
}

interface BenchApi {
  /** Isolated gradient-step throughput of `topology` on `backend` (shared/training/probe.ts). */
  gradientStep(topology: unknown, spec: StepSpec, backend: BackendName, batchSize: number, budgetMs: number): Promise<ProbeFigures | { error: string }>;
  /** The volunteer worker's start-up probe and choice on this browser for `topology`. */
  probeChoice(topology: unknown, spec: StepSpec, batchSize: number): Promise<{ outcomes: ProbeOutcome[]; decision: BackendDecision }>;
  /**
   * The packed gradient of `topology` at `weights` (packed float32, model.weights order) on one batch
   * (feature and target bytes as a lease carries them), computed on `backend`.
   */
  gradient(topology: unknown, spec: StepSpec, backend: BackendName, weights: number[], x: number[], y: number[], numSamples: number): Promise<number[] | { error: string }>;
}

const params = new URLSearchParams(location.search);
// Benchmarks: `?tfFlags=NAME:value,...` sets tfjs flags before any backend starts, e.g.
// WEBGL_FORCE_F16_TEXTURES:true (WebGL storing in half floats, as on GPUs without float32 render
// targets) or WEBGPU_MATMUL_PROGRAM_TYPE:1 (split-K matmul, summing with atomics).
for (const kv of (params.get('tfFlags') ?? '').split(',').filter(Boolean)) {
  const [name, raw = ''] = kv.split(':');
  tf.env().set(name!, raw === 'true' ? true : raw === 'false' ? false : Number(raw));
}
const state: CoverageState = { done: false, adapter: null, backends: [], rows: [], error: null, ms: 0 };
const w = window as unknown as { flockCoverage: CoverageState; flockBench: BenchApi };
w.flockCoverage = state;

const $ = (id: string): HTMLElement => document.getElementById(id)!;
const fmt = (x: number | null): string => (x === null ? '–' : x === 0 ? '0' : x.toExponential(1));

function cell(row: CoverageRow | undefined): HTMLTableCellElement {
  const td = document.createElement('td');
  if (!row) {
    td.textContent = '…';
    return td;
  }
  const label = row.status === 'pass' ? 'pass' : row.status === 'missing-kernel' ? `missing ${row.kernel}` : row.status;
  td.textContent = `${label} ${row.maxRelDiff !== null ? fmt(row.maxRelDiff) : ''}`;
  td.title = `${row.message ?? ''} max rel ${fmt(row.maxRelDiff)}, max abs ${fmt(row.maxAbsDiff)}, tolerance ${row.tolerance}`.trim();
  td.style.color = row.status === 'pass' ? 'var(--ok)' : 'var(--bad)';
  return td;
}

function render(cases: readonly { name: string }[]): void {
  const head = $('matrix').querySelector('thead tr')!;
  head.replaceChildren(...['case', ...state.backends].map((t) => Object.assign(document.createElement('th'), { textContent: t })));
  const body = $('matrix').querySelector('tbody')!;
  body.replaceChildren(...cases.map((c) => {
    const tr = document.createElement('tr');
    tr.append(Object.assign(document.createElement('td'), { textContent: c.name }));
    for (const b of state.backends) tr.append(cell(state.rows.find((r) => r.case === c.name && r.backend === b)));
    return tr;
  }));
}

async function main(): Promise<void> {
  initTfjs();
  state.adapter = await adapterInfo();
  const wanted = (params.get('backends') ?? 'cpu,wasm,webgpu').split(',').filter(Boolean);
  const filter = params.get('cases');
  const cases = filter ? COVERAGE_CASES.filter((c) => c.name.includes(filter)) : COVERAGE_CASES;
  state.backends = [];
  for (const b of wanted) {
    if (await useBackend(b as BackendName)) state.backends.push(b);
    else state.rows.push(...cases.map((c) => ({ case: c.name, group: c.group, backend: b, status: 'error' as const, kernel: null, maxAbsDiff: null, maxRelDiff: null, tolerance: 0, message: `backend ${b} did not start in this browser`, ms: 0 })));
  }
  const a = state.adapter;
  $('env').textContent = `backends ${state.backends.join(', ')}; WebGPU adapter: ${a ? `${a.vendor} ${a.architecture}${a.isFallbackAdapter ? ' (software)' : ''}` : 'none'}; ${cases.length} cases`;
  render(cases);
  const t0 = performance.now();
  await runCoverage(state.backends, { cases, onRow: (row) => { state.rows.push(row); render(cases); } });
  state.ms = performance.now() - t0;
  const failing = state.rows.filter((r) => r.status !== 'pass').length;
  $('env').textContent += ` — done in ${(state.ms / 1000).toFixed(1)} s, ${failing} not passing`;
}

w.flockBench = {
  async gradientStep(topology, spec, backend, batchSize, budgetMs) {
    initTfjs();
    if (!(await useBackend(backend))) return { error: `backend ${backend} did not start` };
    try {
      return await probeGradientStep(topology, spec, { batchSize, budgetMs });
    } catch (err) {
      return { error: err instanceof Error ? err.message : String(err) };
    }
  },
  async probeChoice(topology, spec, batchSize) {
    initTfjs();
    const outcomes = await probeBackends(probePlan(await adapterInfo(), null), topology, spec, { batchSize, budgetMs: PROBE_BUDGET_MS, useBackend });
    return { outcomes, decision: decideBackend(outcomes) };
  },
  async gradient(topology, spec, backend, weights, x, y, numSamples) {
    initTfjs();
    if (!(await useBackend(backend))) return { error: `backend ${backend} did not start` };
    const model = await buildModel(topology);
    try {
      setWeightsFromPacked(model, weightSpecs(model), new Uint8Array(Float32Array.from(weights).buffer));
      const g = await computeGradients(model, spec, { x: Uint8Array.from(x), y: Uint8Array.from(y), numSamples });
      return Array.from(g.gradients);
    } catch (err) {
      return { error: err instanceof Error ? err.message : String(err) };
    } finally {
      model.dispose();
    }
  },
};

if (params.get('run') !== '0') {
  main().catch((err: unknown) => {
    state.error = err instanceof Error ? err.message : String(err);
    $('env').textContent = `failed: ${state.error}`;
  }).finally(() => {
    state.done = true;
  });
} else {
  state.done = true;
}
