// Do two gradients of the same shard on the same weights agree? Floating point differs across
// devices and summation orders, so not bit-equal: cosine similarity and relative norm within a
// tolerance measured per backend pair (tolerances.ts). Pure.

export interface Tolerance {
  /** Smallest accepted cosine similarity. */
  readonly minCosine: number;
  /** Largest accepted | |a| / |b| - 1 |. */
  readonly maxRelNorm: number;
}

export interface Comparison {
  readonly cosine: number;
  readonly relNorm: number;
  readonly agree: boolean;
}

export function compareGradients(a: Float32Array, b: Float32Array, tol: Tolerance): Comparison {
  if (a.length !== b.length || a.length === 0) return { cosine: 0, relNorm: Infinity, agree: false };
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    dot += x * y;
    na += x * x;
    nb += y * y;
  }
  if (!Number.isFinite(dot + na + nb)) return { cosine: 0, relNorm: Infinity, agree: false };
  if (na === 0 && nb === 0) return { cosine: 1, relNorm: 0, agree: true };
  if (na === 0 || nb === 0) return { cosine: 0, relNorm: Infinity, agree: false };
  const cosine = dot / Math.sqrt(na * nb);
  const relNorm = Math.abs(Math.sqrt(na / nb) - 1);
  return { cosine, relNorm, agree: cosine >= tol.minCosine && relNorm <= tol.maxRelNorm };
}
