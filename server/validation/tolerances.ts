// Agreement tolerances per backend pair, and which backends count as one class. Spot checks only
// compare like with like (BOINC's homogeneous redundancy): results differ across GPU and CPU
// backends. Figures: bench/spot-check-tolerances.ts (Node) and bench/spot-check-tolerances-browser.ts
// (Chromium, the GPU class), both in bench/results/spot-check-tolerances.json.

import type { Tolerance } from './compare.ts';

/** The class a backend's results are compared within. */
export function backendClass(backend: string): string {
  return backend === 'webgl' || backend === 'webgpu' ? 'gpu' : backend === 'wasm' || backend === 'cpu' ? 'cpu-like' : backend;
}

/**
 * cpu-like: measured (bench/spot-check-tolerances.ts, MNIST MLP, batch 64, freshly initialised
 * weights, 10 shards): wasm vs wasm and cpu vs cpu were bit-identical (cosine 1, norm 0); wasm vs cpu
 * gave cosine >= 1 - 4e-14 and relative norm <= 2e-8; a gradient on shuffled labels gave cosine 0.22
 * to 0.53 and norms up to 41% off. In Chromium (below) cpu vs wasm: 1 - 1.3e-13 and 3.1e-7. The
 * accepted band (cosine 0.999, norm 1%) is far wider than honest noise (SIMD vs threaded builds,
 * other summation orders) and far from a wrong result, so wasm and cpu form one class.
 *
 * gpu: measured (bench/spot-check-tolerances-browser.ts, headless Chromium, WebGPU and WebGL on
 * SwiftShader; MNIST MLP 10 shards and CNN 4 shards, batch 64, fresh weights and after 100 SGD
 * steps: 28 gradients per pair). webgpu and webgl were bit-identical run to run, in one tab and
 * across two tabs; webgpu vs webgl, cpu or wasm: cosine >= 1 - 1.3e-13, norm <= 3e-7; WebGPU's
 * split-K matmul (sums with atomics: not bit-identical run to run) vs the default: 1 - 1.3e-13, 5e-7.
 * The worst honest pair was a stand-in for GPUs without float32 render targets, WebGL storing every
 * tensor as half floats (WEBGL_FORCE_F16_TEXTURES) vs webgpu: cosine >= 1 - 2.4e-4, norm <= 6.6e-4.
 * Wrong results (shuffled labels): cosine <= 0.67 (CNN; MLP <= 0.41), norm 18% to 71% off.
 * SwiftShader is a software implementation: real GPUs run other kernels (tiling chosen by adapter
 * limits, fused multiply-add, approximate exp/log), so the band keeps a margin over the worst
 * measured honest pair (x21 in 1 - cosine, x30 in norm) and stays far from every wrong result; the
 * guess it replaces (0.99, 5%) let a gradient scaled by 0.95 through. Fault reasons log the cosine
 * and norm: watch them from the field.
 */
const TOLERANCES: Record<string, Tolerance> = {
  'cpu-like|cpu-like': { minCosine: 0.999, maxRelNorm: 0.01 },
  'gpu|gpu': { minCosine: 0.995, maxRelNorm: 0.02 },
};

export function toleranceFor(backendA: string, backendB: string): Tolerance | null {
  const [a, b] = [backendClass(backendA), backendClass(backendB)].sort();
  return TOLERANCES[`${a}|${b}`] ?? null;
}
