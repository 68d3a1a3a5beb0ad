// The seeded train/test split of one file (data.validationSplit): exactly `held` of `total` rows go
// to test, chosen by selection sampling (Knuth's algorithm S), so a pass streams rows and needs no
// index table; the same seed picks the same rows on every pass and every run.

/** mulberry32: a small, well-mixed 32-bit PRNG; returns floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Rows held out of `total` for a fraction: at least one, and at least one left to train on. */
export const heldOut = (total: number, fraction: number): number => Math.min(total - 1, Math.max(1, Math.round(total * fraction)));

/** Call once per row in file order: true when that row goes to test. */
export function splitPicker(seed: number, total: number, held: number): () => boolean {
  const rand = mulberry32(seed);
  let seen = 0;
  let picked = 0;
  return () => {
    const take = (total - seen) * rand() < held - picked;
    seen++;
    if (take) picked++;
    return take;
  };
}
