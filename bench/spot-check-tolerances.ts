// Measures the spot checks' agreement figures on real gradients: the MNIST MLP's gradient of the
// same shard on the same weights, computed on tfjs wasm and cpu in Node (and twice on each), versus
// a gradient on shuffled labels (a wrong but finite result). Writes
// bench/results/spot-check-tolerances.json (keeping its `browser` part: the GPU class, measured by
// bench/spot-check-tolerances-browser.ts); server/validation/tolerances.ts cites it.
// Usage: npx tsx bench/spot-check-tolerances.ts [shards=20]

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tf } from '../shared/training/tf.ts';
import { initNodeBackend } from '../shared/training/node-backend.ts';
import { buildModel, packWeights, setWeightsFromPacked, weightSpecs } from '../shared/training/model.ts';
import { computeGradients, MNIST_STEP } from '../shared/training/gradient-step.ts';
import { loadMnist } from '../server/data/dataset.ts';
import { demoConfig } from '../server/jobs/demos.ts';
import { compareGradients } from '../server/validation/compare.ts';
import { toleranceFor } from '../server/validation/tolerances.ts';

const shards = Number(process.argv[2] ?? 20);
await initNodeBackend('wasm');
const mnist = await loadMnist();
const cfg = demoConfig('mnist-mlp');
const B = 64;
const pixels = 784;

async function gradient(backend: 'wasm' | 'cpu', weights: Float32Array, x: Uint8Array, y: Uint8Array): Promise<Float32Array> {
  await tf.setBackend(backend);
  const model = await buildModel(cfg.modelTopology);
  setWeightsFromPacked(model, weightSpecs(model), new Uint8Array(weights.buffer));
  const g = await computeGradients(model, MNIST_STEP, { x, y, numSamples: B });
  model.dispose();
  return g.gradients.slice();
}

await tf.setBackend('wasm');
const init = await buildModel(cfg.modelTopology);
const weights = (await packWeights(init)).data.slice();
init.dispose();
const tol = toleranceFor('wasm', 'wasm')!;
const rows: { pair: string; cosine: number; relNorm: number; agree: boolean }[] = [];
for (let s = 0; s < shards; s++) {
  const x = mnist.train.x.subarray(s * B * pixels, (s + 1) * B * pixels);
  const y = mnist.train.y.subarray(s * B, (s + 1) * B);
  const shuffled = Uint8Array.from(y);
  for (let i = shuffled.length - 1; i > 0; i--) {
    const j = (i * 2654435761 + s) % (i + 1);
    [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
  }
  const w1 = await gradient('wasm', weights, x, y);
  const w2 = await gradient('wasm', weights, x, y);
  const c1 = await gradient('cpu', weights, x, y);
  const c2 = await gradient('cpu', weights, x, y);
  const bad = await gradient('wasm', weights, x, shuffled);
  for (const [pair, a, b] of [['wasm|wasm', w1, w2], ['cpu|cpu', c1, c2], ['wasm|cpu', w1, c1], ['wasm|shuffled-labels', w1, bad]] as const) {
    const r = compareGradients(a, b, tol);
    rows.push({ pair, cosine: r.cosine, relNorm: r.relNorm, agree: r.agree });
  }
}
const summary: Record<string, { minCosine: number; maxCosine: number; maxRelNorm: number; agreed: number; n: number }> = {};
for (const r of rows) {
  const s = (summary[r.pair] ??= { minCosine: Infinity, maxCosine: -Infinity, maxRelNorm: 0, agreed: 0, n: 0 });
  s.minCosine = Math.min(s.minCosine, r.cosine);
  s.maxCosine = Math.max(s.maxCosine, r.cosine);
  s.maxRelNorm = Math.max(s.maxRelNorm, r.relNorm);
  s.agreed += r.agree ? 1 : 0;
  s.n++;
}
mkdirSync('bench/results', { recursive: true });
// The browser part (GPU class, bench/spot-check-tolerances-browser.ts) is kept.
const out = 'bench/results/spot-check-tolerances.json';
const previous = existsSync(out) ? (JSON.parse(readFileSync(out, 'utf8')) as { browser?: unknown }) : {};
writeFileSync(out, JSON.stringify({ model: 'mnist-mlp', batch: B, shards, tolerance: tol, summary, ...(previous.browser ? { browser: previous.browser } : {}) }, null, 2) + '\n');
console.log(JSON.stringify(summary, null, 2));
