// Which job a volunteer that did not pin one should work on: weighted fair share of applied samples
// across the running jobs, with hysteresis. Pure: the caller (server/transport/job-assignment.ts)
// gathers each job's load over the sliding window and applies the choice; this module owns no state.
//
// The rule: every running job k has a target share t_k = weight_k / sum of weights. Placing this
// worker on job c gives a projected share P_k = n_k r_k / sum_m n_m r_m, where n_k counts the
// workers on k (this one included) and r_k is k's measured samples per worker-second (models differ
// in cost). The goal share g_k is the target corrected by what the window actually delivered
// (g_k = t_k + gain (t_k - a_k), by at most one worker's share), so a pool too small to split
// evenly time-slices, while a job that was paused for the past minute does not pull the whole pool
// over when it resumes. The worker goes where the distance between P and g is smallest; it leaves a
// job it may still train only after `minDwellMs` on it, and only when the move brings the shares
// closer by more than `margin` of the worker's own share (a move that merely trades a shortfall for
// an equal surplus is no gain, and a move costs a model build and a full weights download).

import type { JobStatus } from '../../shared/protocol/messages.ts';

/** One job as the scheduler sees it, over the sliding window. */
export interface JobLoad {
  readonly id: string;
  /** Admin-set priority, > 0 (JobConfig.weight, default 1). */
  readonly weight: number;
  readonly status: JobStatus;
  /** Samples applied to this job within the window. */
  readonly samples: number;
  /** Worker-time spent on this job within the window, ms (for the per-worker rate). */
  readonly workerMs: number;
  /** Workers placed on this job now; includes the deciding worker when it is placed here. */
  readonly workers: number;
}

/** The deciding worker. */
export interface WorkerPlace {
  /** The job it is placed on now, or null (new worker). */
  readonly current: string | null;
  /** How long it has been on `current`, ms. */
  readonly dwellMs: number;
  /** Jobs this worker reported it cannot train (job:refuse). */
  readonly refused: { has(jobId: string): boolean };
}

export interface SchedulerPolicy {
  /** A worker stays at least this long on a job it can still train. */
  readonly minDwellMs: number;
  /**
   * A move must bring the projected shares closer to the goal by this fraction of the worker's
   * own share (one worker among N moves shares by about 1/N, so the bar scales with the pool).
   */
  readonly margin: number;
  /** How strongly the window's shortfall is corrected (0: worker counts only). */
  readonly gain: number;
  /** Below this many samples in the window the targets are used uncorrected. */
  readonly minWindowSamples: number;
  /** Below this much worker-time on a job its per-worker rate is taken from the others. */
  readonly minRateMs: number;
}

export const DEFAULT_POLICY: SchedulerPolicy = { minDwellMs: 8_000, margin: 0.1, gain: 1, minWindowSamples: 1_000, minRateMs: 3_000 };

export type Choice =
  | { readonly jobId: string; readonly why: 'stay' | 'join' | 'move' | 'forced' }
  | null;

/**
 * The job this worker should work on, or null when no running job is left that it can train
 * (the caller then keeps today's behaviour: the worker waits on, or finishes with, its job).
 * 'join': a new worker; 'forced': its job stopped running or was refused; 'move': fairness.
 */
export function chooseJob(jobs: readonly JobLoad[], worker: WorkerPlace, policy: SchedulerPolicy = DEFAULT_POLICY): Choice {
  const running = jobs.filter((j) => j.status === 'running' && j.weight > 0 && Number.isFinite(j.weight));
  const candidates = running.filter((j) => !worker.refused.has(j.id));
  if (candidates.length === 0) return null;
  const rate = perWorkerRates(running, policy);
  const others = running.map((j) => Math.max(0, j.workers - (j.id === worker.current ? 1 : 0)));
  const goal = goalShares(running, policy, 1 / (1 + others.reduce((s, n) => s + n, 0)));
  const loadIf = (jobId: string): { load: number[]; total: number } => {
    const load = running.map((j, i) => (others[i]! + (j.id === jobId ? 1 : 0)) * rate[i]!);
    return { load, total: load.reduce((s, x) => s + x, 0) };
  };
  const distanceIf = (jobId: string): number => {
    const { load, total } = loadIf(jobId);
    return running.reduce((d, _, i) => d + Math.abs(load[i]! / total - goal[i]!), 0) / 2;
  };
  /** This worker's projected share of all samples when on `jobId`. */
  const ownShareIf = (jobId: string): number => {
    const { total } = loadIf(jobId);
    return rate[running.findIndex((j) => j.id === jobId)]! / total;
  };
  let best = candidates[0]!;
  let bestDistance = distanceIf(best.id);
  for (const c of candidates.slice(1)) {
    const d = distanceIf(c.id);
    // Strictly better only: ties keep the earlier (older) job, so choices are deterministic.
    if (d < bestDistance - 1e-12) {
      best = c;
      bestDistance = d;
    }
  }
  const stillHere = candidates.find((j) => j.id === worker.current);
  if (!stillHere) return { jobId: best.id, why: worker.current === null ? 'join' : 'forced' };
  if (best.id === stillHere.id || worker.dwellMs < policy.minDwellMs) return { jobId: stillHere.id, why: 'stay' };
  if (distanceIf(stillHere.id) - bestDistance <= policy.margin * ownShareIf(best.id)) return { jobId: stillHere.id, why: 'stay' };
  return { jobId: best.id, why: 'move' };
}

/**
 * Target shares (weights), corrected by the window's shortfall once the window holds enough
 * samples; each correction is capped at `maxCorrection` (one worker's share: enough to break ties
 * between whole-worker placements, too little to wind up).
 */
export function goalShares(running: readonly JobLoad[], policy: Pick<SchedulerPolicy, 'gain' | 'minWindowSamples'>, maxCorrection = Infinity): number[] {
  const weights = running.reduce((s, j) => s + j.weight, 0);
  const target = running.map((j) => j.weight / weights);
  const samples = running.reduce((s, j) => s + j.samples, 0);
  if (samples < policy.minWindowSamples || policy.gain === 0) return target;
  const raw = running.map((j, i) => {
    const correction = Math.max(-maxCorrection, Math.min(maxCorrection, policy.gain * (target[i]! - j.samples / samples)));
    return Math.min(1, Math.max(0, target[i]! + correction));
  });
  const sum = raw.reduce((s, x) => s + x, 0);
  return sum > 0 ? raw.map((x) => x / sum) : target;
}

/** Samples per worker-ms of each job; a job without enough history gets the others' mean (or 1). */
function perWorkerRates(running: readonly JobLoad[], policy: Pick<SchedulerPolicy, 'minRateMs'>): number[] {
  const measured = running.map((j) => (j.workerMs >= policy.minRateMs && j.samples > 0 ? j.samples / j.workerMs : null));
  const known = measured.filter((r): r is number => r !== null);
  const fallback = known.length > 0 ? known.reduce((s, r) => s + r, 0) / known.length : 1;
  return measured.map((r) => r ?? fallback);
}
