// Which evaluated version is the job's best, by the job's metric: test accuracy (higher) for a
// classification loss, test loss (lower) otherwise. Pure; the job runtime keeps that version's
// weights in `<job dir>/best/` (a CheckpointStore of its own, so keep-last-N never prunes it).

import type { JobConfig } from '../jobs/job-config.ts';

export type BestMetric = 'testAccuracy' | 'testLoss';

export interface BestCheckpoint {
  readonly version: number;
  /** What "best" was judged by. */
  readonly metric: BestMetric;
  /** Null for regression jobs. */
  readonly testAccuracy: number | null;
  readonly testLoss: number;
  /** When that version was evaluated (epoch ms). */
  readonly at: number;
}

export function bestMetricFor(loss: JobConfig['loss']): BestMetric {
  return loss === 'categoricalCrossentropy' || loss === 'binaryCrossentropy' ? 'testAccuracy' : 'testLoss';
}

/** Strictly better than the best so far (ties keep the earlier one); non-finite figures never are. */
export function isBetter(metric: BestMetric, candidate: { testAccuracy: number | null; testLoss: number }, best: { testAccuracy: number | null; testLoss: number } | null): boolean {
  const v = candidate[metric];
  if (v === null || !Number.isFinite(v)) return false;
  if (best === null) return true;
  const b = best[metric];
  return b === null || (metric === 'testAccuracy' ? v > b : v < b);
}
