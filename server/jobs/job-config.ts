// What defines a job: the model, how it learns, on which data, until when. Plain JSON, stored in
// the StateStore (`jobs` table of <dataDir>/flock.db) when the job is created; validated whenever it enters the process.

import { z } from 'zod';
import { STALENESS_RULES } from '../aggregation/staleness.ts';
import { LOSSES } from '../../shared/protocol/messages.ts';
import { AggregationSchema } from '../aggregation/aggregation-config.ts';
import { ENCODINGS, WEIGHT_ENCODINGS } from '../../shared/codec/compression.ts';

export const JobConfigSchema = z.object({
  name: z.string().min(1).max(200),
  description: z.string().max(2000),
  /**
   * Where the examples come from: the built-in MNIST ('mnist'), or the job's own files converted at
   * submission into the shard store in the job's folder ('store', see server/data/store/).
   */
  dataset: z.enum(['mnist', 'store']),
  task: z.enum(['classification', 'regression']).default('classification'),
  /** tfjs Layers topology (model.toJSON(null, false)). */
  modelTopology: z.record(z.string(), z.unknown()),
  loss: z.enum(LOSSES),
  /** The model's last layer outputs logits: cross-entropy is taken from logits. */
  fromLogits: z.boolean().default(false),
  optimizer: z.discriminatedUnion('kind', [
    z.object({
      kind: z.literal('adam'),
      learningRate: z.number().positive().max(10),
      beta1: z.number().min(0).max(1).optional(),
      beta2: z.number().min(0).max(1).optional(),
      epsilon: z.number().positive().optional(),
    }),
    z.object({
      kind: z.literal('sgd'),
      learningRate: z.number().positive().max(10),
      momentum: z.number().min(0).max(1).optional(),
      nesterov: z.boolean().optional(),
    }),
  ]),
  /** Examples per lease: one gradient is computed over this many. */
  batchSize: z.number().int().min(1).max(65536),
  staleness: z.object({ rule: z.enum(STALENESS_RULES), maxStaleness: z.number().int().min(0).max(100000) }),
  stop: z.object({
    maxEpochs: z.number().int().min(1).max(100000),
    targetAccuracy: z.number().min(0).max(1).nullable(),
    /** Regression targets: stop once the test MAE / RMSE is at or below. */
    targetMae: z.number().nonnegative().nullable().optional(),
    targetRmse: z.number().nonnegative().nullable().optional(),
    /** Wall-time limit on training (paused time not counted), minutes. */
    maxMinutes: z.number().positive().max(10 * 365 * 24 * 60).nullable().optional(),
  }),
  evalEveryVersions: z.number().int().min(1).max(1_000_000),
  leaseTimeoutMs: z.number().int().min(100).max(3_600_000),
  /** Gradients whose L2 norm exceeds this are refused (poison guard). */
  maxGradNorm: z.number().positive(),
  seed: z.number().int().min(0).max(2 ** 31),
  /** Share of the volunteer pool relative to other running jobs (server/jobs/scheduler.ts); absent = 1. */
  weight: z.number().positive().max(1000).optional(),
  /**
   * How gradients become optimizer steps (server/aggregation/aggregation-config.ts). Absent: plain
   * `async`, as every job stored before this key existed ran (so its log replays bit-exactly);
   * new jobs and the demos get the robust buffered default.
   */
  aggregation: AggregationSchema.optional(),
  /**
   * Wire compression (shared/codec/compression.ts), negotiated per worker: weights down and
   * gradients up; a worker that cannot use an encoding gets float32. Absent = float32 both ways.
   */
  compression: z
    .object({ weights: z.enum(WEIGHT_ENCODINGS), gradients: z.enum(ENCODINGS), topkRatio: z.number().gt(0).max(1).optional() })
    .optional(),
});

export type JobConfig = z.infer<typeof JobConfigSchema>;
