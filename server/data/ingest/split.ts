// The seeded train/test split of one file (data.validationSplit): exactly `held` of `total` rows go
// to test, chosen by selection sampling (Knuth's algorithm S), so a pass streams rows and needs no
// index table; the same seed picks the same rows on every pass and every run.

import { mulberry32 } from '../sharder.ts';

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
