// Measures the spot checks' agreement figures for the GPU class in headless Chromium (WebGPU and
// WebGL on SwiftShader, a software implementation): the gradient of the same shard on the same
// weights computed twice in one tab, in a second tab, on the other GPU backend, and on the tab's cpu
// and wasm backends, versus a gradient on shuffled labels (a wrong but finite result). Stand-ins for
// what other GPUs do differently, each in its own tab: WebGL storing half floats (GPUs without
// float32 render targets), and WebGPU's split-K (sums with atomics, order not fixed) and reduce
// matmul programs. MNIST MLP (and the CNN, fewer shards), at freshly initialised weights and after
// 100 SGD steps. Adds the
// figures, as `browser`, to bench/results/spot-check-tolerances.json (bench/spot-check-tolerances.ts
// writes the Node wasm/cpu part); server/validation/tolerances.ts cites them.
// Usage: npm run build && npx tsx bench/spot-check-tolerances-browser.ts [--shards 10] [--cnn-shards 4]

import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Page } from '@playwright/test';
import { launchBrowser } from '../e2e/browser.ts';
import { startCoordinatorProcess } from '../e2e/coordinator-process.ts';
import { initNodeBackend } from '../shared/training/node-backend.ts';
import { buildModel, packWeights, setWeightsFromPacked, weightSpecs } from '../shared/training/model.ts';
import { computeGradients, MNIST_STEP, type StepSpec } from '../shared/training/gradient-step.ts';
import { loadMnist } from '../server/data/dataset.ts';
import { demoConfig, type DemoName } from '../server/jobs/demos.ts';
import { compareGradients } from '../server/validation/compare.ts';
import { toleranceFor } from '../server/validation/tolerances.ts';

const args = process.argv.slice(2);
const arg = (name: string, dflt: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const SHARDS: Record<string, number> = { 'mnist-mlp': arg('shards', 10), 'mnist-cnn': arg('cnn-shards', 4) };
const B = 64;
const PIXELS = 784;
const TRAIN_STEPS = 100;
const OUT = 'bench/results/spot-check-tolerances.json';

interface BenchApi {
  gradient(topology: unknown, spec: StepSpec, backend: string, weights: number[], x: number[], y: number[], numSamples: number): Promise<number[] | { error: string }>;
}

await initNodeBackend('wasm');
const mnist = await loadMnist();
const shardOf = (s: number): { x: Uint8Array; y: Uint8Array; shuffled: Uint8Array } => {
  const x = mnist.train.x.subarray(s * B * PIXELS, (s + 1) * B * PIXELS);
  const y = mnist.train.y.subarray(s * B, (s + 1) * B);
  // The same deterministic shuffle as bench/spot-check-tolerances.ts.
  const shuffled = Uint8Array.from(y);
  for (let i = shuffled.length - 1; i > 0; i--) {
    const j = (i * 2654435761 + s) % (i + 1);
    [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
  }
  return { x, y, shuffled };
};

/** Freshly initialised weights, and the same after TRAIN_STEPS plain SGD steps (Node, wasm) on shards not measured. */
async function weightSets(demo: DemoName): Promise<{ name: string; weights: Float32Array }[]> {
  const topology = demoConfig(demo).modelTopology;
  const model = await buildModel(topology);
  const fresh = (await packWeights(model)).data.slice();
  const specs = weightSpecs(model);
  if (model.trainableWeights.length !== model.weights.length) throw new Error(`${demo} has non-trainable weights: the SGD below assumes none`);
  const w = fresh.slice();
  for (let step = 0; step < TRAIN_STEPS; step++) {
    const { x, y } = shardOf(200 + step);
    setWeightsFromPacked(model, specs, new Uint8Array(w.buffer));
    const g = await computeGradients(model, MNIST_STEP, { x, y, numSamples: B });
    for (let i = 0; i < w.length; i++) w[i]! -= 0.05 * g.gradients[i]!;
  }
  model.dispose();
  return [{ name: 'fresh', weights: fresh }, { name: `after ${TRAIN_STEPS} SGD steps`, weights: w }];
}

async function gradientIn(page: Page, topology: unknown, backend: string, weights: Float32Array, x: Uint8Array, y: Uint8Array): Promise<Float32Array> {
  const r = await page.evaluate(
    ([t, spec, b, w, xs, ys, n]) => (window as unknown as { flockBench: BenchApi }).flockBench.gradient(t, spec, b, w, xs, ys, n),
    [topology, MNIST_STEP, backend, Array.from(weights), Array.from(x), Array.from(y), B] as const,
  );
  if (!Array.isArray(r)) throw new Error(`${backend}: ${r.error}`);
  return Float32Array.from(r);
}

interface Row { model: string; weights: string; shard: number; pair: string; cosine: number; relNorm: number }

const coordDir = mkdtempSync(path.join(tmpdir(), 'flock-bench-tol-'));
const coord = await startCoordinatorProcess({ FLOCK_DATA_DIR: coordDir, FLOCK_DEMO: 'none' });
const browser = await launchBrowser();
const rows: Row[] = [];
const failures: Record<string, string> = {};
let adapter: unknown = null;
const t0 = Date.now();
try {
  const tabs: Page[] = [];
  for (const flags of ['', '', 'WEBGL_FORCE_F16_TEXTURES:true', 'WEBGPU_MATMUL_PROGRAM_TYPE:1', 'WEBGPU_MATMUL_PROGRAM_TYPE:0']) {
    const tab = await browser.newPage();
    await tab.goto(`${coord.url}/coverage/?run=0${flags ? `&tfFlags=${flags}` : ''}`);
    await tab.waitForFunction(() => (window as unknown as { flockBench?: unknown }).flockBench !== undefined);
    tabs.push(tab);
  }
  const [tab1, tab2, tabF16, tabSplitK, tabReduce] = tabs as [Page, Page, Page, Page, Page];
  adapter = await tab1.evaluate(async () => {
    const gpu = (navigator as unknown as { gpu?: { requestAdapter(): Promise<{ info?: { vendor: string; architecture: string; isFallbackAdapter?: boolean }; isFallbackAdapter?: boolean } | null> } }).gpu;
    const a = await gpu?.requestAdapter();
    return a ? { vendor: a.info?.vendor, architecture: a.info?.architecture, isFallbackAdapter: a.info?.isFallbackAdapter ?? a.isFallbackAdapter ?? null } : null;
  });
  console.log(`adapter: ${JSON.stringify(adapter)}`);
  for (const demo of ['mnist-mlp', 'mnist-cnn'] as const) {
    const topology = demoConfig(demo).modelTopology;
    for (const set of await weightSets(demo)) {
      for (let s = 0; s < SHARDS[demo]!; s++) {
        const { x, y, shuffled } = shardOf(s);
        const g = (page: Page, backend: string, labels = y): Promise<Float32Array> => gradientIn(page, topology, backend, set.weights, x, labels);
        const gpu1 = await g(tab1, 'webgpu');
        const gpu2 = await g(tab1, 'webgpu');
        const gpuTab2 = await g(tab2, 'webgpu');
        const gl1 = await g(tab1, 'webgl');
        const gl2 = await g(tab1, 'webgl');
        const glTab2 = await g(tab2, 'webgl');
        const cpu = await g(tab1, 'cpu');
        const wasm = await g(tab1, 'wasm');
        const bad = await g(tab1, 'webgpu', shuffled);
        // The variants may not run every model (a forced matmul program can exceed dispatch limits).
        const variant = async (name: string, page: Page, backend: string): Promise<Float32Array | null> => {
          try {
            return await g(page, backend);
          } catch (err) {
            failures[`${demo}: ${name}`] = (err as Error).message.split('\n')[0]!.slice(0, 200);
            return null;
          }
        };
        const glF16 = await variant('webgl f16 textures', tabF16, 'webgl');
        const splitK1 = await variant('webgpu split-K', tabSplitK, 'webgpu');
        const splitK2 = splitK1 && (await variant('webgpu split-K', tabSplitK, 'webgpu'));
        const reduce = await variant('webgpu reduce matmul', tabReduce, 'webgpu');
        const pairs: [string, Float32Array | null, Float32Array | null][] = [
          ['webgpu|webgpu same tab', gpu1, gpu2],
          ['webgpu|webgpu two tabs', gpu1, gpuTab2],
          ['webgl|webgl same tab', gl1, gl2],
          ['webgl|webgl two tabs', gl1, glTab2],
          ['webgpu|webgl', gpu1, gl1],
          ['webgpu|cpu', gpu1, cpu],
          ['webgpu|wasm', gpu1, wasm],
          ['webgl|cpu', gl1, cpu],
          ['cpu|wasm (browser)', cpu, wasm],
          ['webgl f16 textures|webgpu', glF16, gpu1],
          ['webgl f16 textures|cpu', glF16, cpu],
          ['webgpu split-K|split-K same tab', splitK1, splitK2],
          ['webgpu split-K|webgpu', splitK1, gpu1],
          ['webgpu reduce matmul|webgpu', reduce, gpu1],
          ['webgpu split-K|webgl f16 textures', splitK1, glF16],
          ['webgpu|shuffled-labels (webgpu)', gpu1, bad],
          ['webgl|shuffled-labels (webgpu)', gl1, bad],
          ['webgl f16 textures|shuffled-labels (webgpu)', glF16, bad],
        ];
        for (const [pair, a, b] of pairs) {
          if (!a || !b) continue;
          const r = compareGradients(a, b, { minCosine: 0, maxRelNorm: Infinity });
          rows.push({ model: demo, weights: set.name, shard: s, pair, cosine: r.cosine, relNorm: r.relNorm });
        }
        const last = (pair: string): Row => rows.filter((r) => r.pair === pair).at(-1)!;
        const oneMinus = (pair: string): string => (last(pair) ? (1 - last(pair).cosine).toExponential(1) : 'n/a');
        process.stdout.write(`${demo} ${set.name} shard ${s}: 1-cos webgpu twice ${oneMinus('webgpu|webgpu same tab')}, vs cpu ${oneMinus('webgpu|cpu')}, f16 webgl vs webgpu ${oneMinus('webgl f16 textures|webgpu')}, split-K vs webgpu ${oneMinus('webgpu split-K|webgpu')}; shuffled cos ${last('webgpu|shuffled-labels (webgpu)').cosine.toFixed(3)} (${((Date.now() - t0) / 1000).toFixed(0)} s)\n`);
      }
    }
  }
} finally {
  await browser.close();
  await coord.stop('SIGTERM');
  rmSync(coordDir, { recursive: true, force: true });
}

type Summary = { minCosine: number; maxCosine: number; minRelNorm: number; maxRelNorm: number; n: number };
const summarize = (filter: (r: Row) => boolean): Record<string, Summary> => {
  const out: Record<string, Summary> = {};
  for (const r of rows.filter(filter)) {
    const s = (out[r.pair] ??= { minCosine: Infinity, maxCosine: -Infinity, minRelNorm: Infinity, maxRelNorm: 0, n: 0 });
    s.minRelNorm = Math.min(s.minRelNorm, r.relNorm);
    s.minCosine = Math.min(s.minCosine, r.cosine);
    s.maxCosine = Math.max(s.maxCosine, r.cosine);
    s.maxRelNorm = Math.max(s.maxRelNorm, r.relNorm);
    s.n++;
  }
  return out;
};
const byModel = Object.fromEntries(
  [...new Set(rows.map((r) => `${r.model} / ${r.weights}`))].map((k) => [k, summarize((r) => `${r.model} / ${r.weights}` === k)]),
);
const overall = summarize(() => true);
const tol = toleranceFor('webgpu', 'webgpu');
const browserPart = {
  where: 'headless Debian Chromium, WebGPU and WebGL on SwiftShader (software), this machine',
  adapter,
  batch: B,
  shards: SHARDS,
  weights: ['fresh', `after ${TRAIN_STEPS} SGD steps (lr 0.05, Node wasm)`],
  variants: { 'webgl f16 textures': 'WEBGL_FORCE_F16_TEXTURES=true', 'webgpu split-K': 'WEBGPU_MATMUL_PROGRAM_TYPE=1', 'webgpu reduce matmul': 'WEBGPU_MATMUL_PROGRAM_TYPE=0' },
  gpuTolerance: tol,
  agreedUnderGpuTolerance: tol ? Object.fromEntries(Object.keys(overall).map((p) => [p, rows.filter((r) => r.pair === p && r.cosine >= tol.minCosine && r.relNorm <= tol.maxRelNorm).length])) : null,
  failures,
  overall,
  byModel,
  seconds: Math.round((Date.now() - t0) / 1000),
};
mkdirSync('bench/results', { recursive: true });
const previous = existsSync(OUT) ? (JSON.parse(readFileSync(OUT, 'utf8')) as Record<string, unknown>) : {};
writeFileSync(OUT, JSON.stringify({ ...previous, browser: browserPart }, null, 2) + '\n');
console.log(JSON.stringify(overall, null, 2));
