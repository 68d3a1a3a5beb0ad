// The `aggregation` key of a job's config: how gradients become optimizer steps. Pure data and
// its defaults; the Aggregator (aggregator.ts) applies it.

import { z } from 'zod';
import { COMBINE_RULES } from './robust.ts';

export const AGGREGATION_MODES = ['async', 'buffered', 'local'] as const;
export type AggregationMode = (typeof AGGREGATION_MODES)[number];

export const AggregationSchema = z.object({
  /**
   * `async`: every gradient is one optimizer step (trusted fleets). `buffered`: `bufferSize` gradients
   * are combined by `rule` into one step (FedBuff; robust with median / trimmed-mean / centered-clip).
   * `local`: each lease is `localSteps` steps on the worker; it returns weights-before minus
   * weights-after, combined like `buffered` and applied by an outer SGD, Nesterov when
   * outerMomentum > 0 (DiLoCo).
   */
  mode: z.enum(AGGREGATION_MODES),
  rule: z.enum(COMBINE_RULES).default('mean'),
  bufferSize: z.number().int().min(1).max(256).default(1),
  /** Robust rules first clip every gradient to this multiple of the median norm of recent gradients. */
  clipMultiple: z.number().positive().max(1000).default(2),
  /** trimmed-mean: the fraction of the buffer dropped at each end, per coordinate. */
  trimFraction: z.number().min(0).max(0.49).default(0.2),
  /** centered-clip: server momentum of the centre the clip starts from (0: centre at zero). */
  serverMomentum: z.number().min(0).max(0.999).default(0.9),
  /**
   * buffered: a step's learning rate is the job's times this (a step averages bufferSize gradients,
   * a bufferSize-times larger batch). Absent: 1 (jobs stored before the key existed replay as they
   * ran); new jobs get sqrt(bufferSize) (aggregationFor, DEFAULT_AGGREGATION).
   */
  learningRateScale: z.number().positive().max(100).optional(),
  /**
   * Robust rules: momentum of each worker's gradient history (history-screen.ts); a gradient is
   * weighted down by how far its worker's history sits from the others'. 0 or absent: off (jobs
   * stored before the key existed); new robust jobs get 0.9.
   */
  workerMomentum: z.number().min(0).max(0.999).optional(),
  /**
   * Robust rules with a worker history: past this many times the median distance, a gradient's
   * weight falls as the square of its worker's distance (history-screen.ts screenWeights), so a
   * far-out worker's pull shrinks instead of staying at the median's. Absent: tau / d all the way
   * (jobs stored before the key existed); new robust jobs get 2.
   */
  screenKnee: z.number().min(1).max(100).optional(),
  /**
   * async / buffered: workers get the weights predicted s optimizer steps ahead, s = the recent
   * average staleness of accepted gradients, so a gradient is computed about where the weights
   * will be when it lands (DANA, Hakimi et al. 2019). The model itself, evaluations, checkpoints
   * and replay are untouched. Absent: off (jobs stored before the key existed); new async and
   * buffered jobs get true. Ignored in `local` mode.
   */
  lookahead: z.boolean().optional(),
  /** local: optimizer steps each worker takes over its shard (one minibatch of batchSize each). */
  localSteps: z.number().int().min(1).max(10_000).default(32),
  /** local: the outer optimizer (SGD; Nesterov momentum when > 0) applied to the combined pseudo-gradient. */
  // DiLoCo's 0.7 with Nesterov momentum 0.9 diverged here with several stale workers and short H
  // (bench/convergence.ts): the pseudo-gradients arrive one version apart, and momentum multiplies
  // their staleness. Plain SGD at 1.5 over the mean of 2 reached 97% in the fewest messages.
  outerLearningRate: z.number().positive().max(10).default(1.5),
  outerMomentum: z.number().min(0).max(0.999).default(0),
});
export type AggregationConfig = z.infer<typeof AggregationSchema>;

/** Jobs stored before `aggregation` existed: one gradient, one step. */
export const LEGACY_AGGREGATION: AggregationConfig = AggregationSchema.parse({ mode: 'async' });

/**
 * What the demos and new jobs get: buffers of 6 gradients, each clipped to 2x the recent median norm,
 * combined by CenteredClip from a momentum centre (anyone can open the volunteer URL).
 */
export const DEFAULT_AGGREGATION: AggregationConfig = AggregationSchema.parse({ mode: 'buffered', rule: 'centered-clip', bufferSize: 6, learningRateScale: Math.sqrt(6), workerMomentum: 0.9, screenKnee: 2, lookahead: true });

/**
 * The config for a mode named with some of its options (job files, POST /api/jobs): `buffered` and
 * `local` start from the robust default's rule and buffer, `async` needs nothing.
 */
export function aggregationFor(input: { mode: AggregationMode; rule?: string | undefined; bufferSize?: number | undefined; localSteps?: number | undefined } & Record<string, unknown>): AggregationConfig {
  if (input.mode === 'async') {
    const parsed = AggregationSchema.parse(input);
    return parsed.lookahead === undefined ? { ...parsed, lookahead: true } : parsed;
  }
  const defaults = input.mode === 'local' ? { rule: DEFAULT_AGGREGATION.rule, bufferSize: 2 } : { rule: DEFAULT_AGGREGATION.rule, bufferSize: DEFAULT_AGGREGATION.bufferSize };
  const given = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined));
  const parsed = AggregationSchema.parse({ ...defaults, ...given });
  return {
    ...parsed,
    ...(parsed.mode === 'buffered' && parsed.learningRateScale === undefined ? { learningRateScale: Math.sqrt(parsed.bufferSize) } : {}),
    ...(parsed.rule !== 'mean' && parsed.workerMomentum === undefined ? { workerMomentum: 0.9 } : {}),
    ...(parsed.rule !== 'mean' && parsed.screenKnee === undefined ? { screenKnee: 2 } : {}),
    ...(parsed.mode === 'buffered' && parsed.lookahead === undefined ? { lookahead: true } : {}),
  };
}

export function aggregationOf(cfg: { aggregation?: AggregationConfig | undefined }): AggregationConfig {
  // Parsed again so a config built in code (tests, demos) gets the same defaults as a stored one.
  return cfg.aggregation ? AggregationSchema.parse(cfg.aggregation) : LEGACY_AGGREGATION;
}

/** One line for dashboards and logs: "buffered x6, centered-clip". */
export function describeAggregation(a: AggregationConfig): string {
  const ahead = a.lookahead && a.mode !== 'local' ? ', look-ahead' : '';
  if (a.mode === 'async') return `async (every gradient a step${ahead})`;
  const rule = a.rule === 'mean' ? 'mean' : `${a.rule}, clip ${a.clipMultiple}x median norm${a.workerMomentum ? ', worker history' : ''}`;
  if (a.mode === 'buffered') return `buffered x${a.bufferSize}, ${rule}${a.learningRateScale && a.learningRateScale !== 1 ? `, lr x${+a.learningRateScale.toFixed(2)}` : ''}${ahead}`;
  const outer = a.outerMomentum > 0 ? `outer Nesterov ${a.outerLearningRate}, momentum ${a.outerMomentum}` : `outer SGD ${a.outerLearningRate}`;
  return `local ${a.localSteps} steps, x${a.bufferSize}, ${rule}, ${outer}`;
}
