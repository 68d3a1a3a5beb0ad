// Agreement tolerances per backend pair, and which backends count as one class. Spot checks only
// compare like with like (BOINC's homogeneous redundancy): results differ across GPU and CPU
// backends. Figures: bench/spot-check-tolerances.ts (bench/results/spot-check-tolerances.json).

import type { Tolerance } from './compare.ts';

/** The class a backend's results are compared within. */
export function backendClass(backend: string): string {
  return backend === 'webgl' || backend === 'webgpu' ? 'gpu' : backend === 'wasm' || backend === 'cpu' ? 'cpu-like' : backend;
}

/**
 * Measured (bench/spot-check-tolerances.ts, MNIST MLP, batch 64, freshly initialised weights, 10
 * shards): wasm vs wasm and cpu vs cpu were bit-identical (cosine 1, norm 0); wasm vs cpu gave
 * cosine >= 1 - 4e-14 and relative norm <= 2e-8; a gradient on shuffled labels gave cosine 0.22 to
 * 0.53 and norms up to 41% off. The accepted band (cosine 0.999, norm 1%) is far wider than honest
 * noise (SIMD vs threaded builds, other summation orders) and far from a wrong result, so wasm and
 * cpu form one class. GPU pairs (float32 on different GPUs, fused kernels) could not be measured
 * here (no GPU in Node): a wider band, to be measured from the field.
 */
const TOLERANCES: Record<string, Tolerance> = {
  'cpu-like|cpu-like': { minCosine: 0.999, maxRelNorm: 0.01 },
  'gpu|gpu': { minCosine: 0.99, maxRelNorm: 0.05 },
};

export function toleranceFor(backendA: string, backendB: string): Tolerance | null {
  const [a, b] = [backendClass(backendA), backendClass(backendB)].sort();
  return TOLERANCES[`${a}|${b}`] ?? null;
}
