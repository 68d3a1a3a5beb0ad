// Agreement tolerances per backend pair, and which backends count as one class. Spot checks only
// compare like with like (BOINC's homogeneous redundancy): results differ across GPU and CPU
// backends. Figures: bench/spot-check-tolerances.ts (bench/results/spot-check-tolerances.json).

import type { Tolerance } from './compare.ts';

/** The class a backend's results are compared within. */
export function backendClass(backend: string): string {
  return backend === 'webgl' || backend === 'webgpu' ? 'gpu' : backend === 'wasm' || backend === 'cpu' ? 'cpu-like' : backend;
}

/**
 * Measured on the MNIST MLP (batch 64), same weights and shard, 20 shards: wasm vs wasm (SIMD vs
 * threaded builds), wasm vs cpu, cpu vs cpu all gave cosine >= 0.999999 and relative norm
 * <= 1e-5; a gradient on shuffled labels gave cosine <= 0.6 against the true one. The accepted
 * band is wide around the honest figures (cosine 0.999, norm 1%) and still far from a wrong result.
 * GPU pairs (float32 on different GPUs, fused kernels) are not measured here: a wider band.
 */
const TOLERANCES: Record<string, Tolerance> = {
  'cpu-like|cpu-like': { minCosine: 0.999, maxRelNorm: 0.01 },
  'gpu|gpu': { minCosine: 0.99, maxRelNorm: 0.05 },
};

export function toleranceFor(backendA: string, backendB: string): Tolerance | null {
  const [a, b] = [backendClass(backendA), backendClass(backendB)].sort();
  return TOLERANCES[`${a}|${b}`] ?? null;
}
