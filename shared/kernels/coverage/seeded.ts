// Deterministic inputs for cross-backend comparisons (coverage matrix, kernel tests): the same
// plain numbers on every backend and in every process. Pure; no tfjs.

/** Uniform values in [-1, 1) + offset from mulberry32(seed); identical in Node and browsers. */
export function seeded(size: number, seed: number, offset = 0): number[] {
  let state = seed >>> 0;
  const out = new Array<number>(size);
  for (let i = 0; i < size; ++i) {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    out[i] = (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1 + offset;
  }
  return out;
}

export function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}
