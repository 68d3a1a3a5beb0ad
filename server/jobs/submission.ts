// From a job file on disk to a job ready to create: parse the file, load the model, decide the
// loss, convert the data into a shard store in a staging folder, and prove one gradient step on
// the coordinator. Used by POST /api/jobs (uploads land in a staging folder first) and by
// `flockctl submit` to validate locally before uploading. Owns nothing once it returns: the
// caller moves the staged data into the job (JobRegistry.create) or removes the staging folder.

import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { tf } from '../../shared/training/tf.ts';
import { buildModel } from '../../shared/training/model.ts';
import { computeGradients, type StepSpec } from '../../shared/training/gradient-step.ts';
import { ingest } from '../data/ingest/index.ts';
import { DataError } from '../data/ingest/data-error.ts';
import { ShardStore } from '../data/store/shard-store.ts';
import type { StoreMeta } from '../data/store/store-meta.ts';
import { JobConfigSchema, type JobConfig } from './job-config.ts';
import { DEFAULT_LIMITS, type SubmitLimits } from './limits.ts';
import { DEFAULT_AGGREGATION, aggregationFor } from '../aggregation/aggregation-config.ts';
import { decideLoss, JobFileError, loadModelFile, parseJobFile, type JobFile, type LoadedModel } from './job-file.ts';

export { DEFAULT_LIMITS, type SubmitLimits } from './limits.ts';

export interface PreparedJob {
  readonly job: JobFile;
  readonly config: JobConfig;
  /** The staged shard store (staging/data): JobRegistry.create moves it into the job. */
  readonly dataDir: string;
  readonly initialWeights: Float32Array | null;
  readonly meta: StoreMeta;
  readonly model: LoadedModel;
}

export type Progress = (p: { readonly phase: string; readonly rows: number }) => void;

/** Reads `jobFile` and everything it names; writes only under `stagingDir`. Throws JobFileError. */
export async function prepareJob(jobFile: string, stagingDir: string, limits: SubmitLimits = DEFAULT_LIMITS, onProgress?: Progress): Promise<PreparedJob> {
  let text: string;
  try {
    text = await readFile(jobFile, 'utf8');
  } catch {
    throw new JobFileError(`job file ${jobFile} cannot be read (does it exist?).`);
  }
  const job = parseJobFile(text, path.basename(jobFile));
  const baseDir = path.dirname(path.resolve(jobFile));
  const model = await loadModelFile(path.resolve(baseDir, job.model), limits.maxModelBytes);
  const loss = decideLoss(job.task, model.outputUnits, model.outputActivation, job.loss);
  const seed = job.seed ?? 42;

  const dataDir = path.join(stagingDir, 'data');
  await mkdir(dataDir, { recursive: true });
  let meta: StoreMeta;
  try {
    ({ meta } = await ingest({
      baseDir,
      data: job.data,
      preprocessing: job.preprocessing,
      task: job.task,
      model: { inputShape: model.inputShape, outputUnits: model.outputUnits, binary: loss.binary },
      seed,
      outDir: dataDir,
      limits: { maxDatasetBytes: limits.maxDatasetBytes },
      onProgress,
    }));
  } catch (err) {
    if (err instanceof DataError) throw new JobFileError(err.message, 'data');
    throw err;
  }

  const spec: StepSpec = { loss: loss.loss, fromLogits: loss.fromLogits, data: meta.spec };
  await proveTrainable(model, spec, dataDir, job.batchSize);

  const targets = job.stop.targetAccuracy ?? job.stop.targetMae ?? job.stop.targetRmse ?? job.stop.maxMinutes;
  if (job.task === 'regression' && job.stop.targetAccuracy !== undefined) throw new JobFileError('"stop.targetAccuracy" is for classification; a regression job stops on targetMae or targetRmse.', 'stop');
  if (job.task === 'classification' && (job.stop.targetMae !== undefined || job.stop.targetRmse !== undefined)) throw new JobFileError('"stop.targetMae" and "stop.targetRmse" are for regression; a classification job stops on targetAccuracy.', 'stop');
  const shardsPerEpoch = Math.ceil(meta.counts.train / job.batchSize);
  const config = JobConfigSchema.parse({
    name: job.name,
    description: job.description ?? `${job.task === 'classification' ? 'Classification' : 'Regression'} of ${meta.counts.train.toLocaleString('en-US')} examples (${path.basename(typeof job.data.train === 'string' ? job.data.train : job.model)}), model of ${model.params.toLocaleString('en-US')} parameters.`,
    dataset: 'store',
    task: job.task,
    modelTopology: model.topology,
    loss: loss.loss,
    fromLogits: loss.fromLogits,
    optimizer: job.optimizer,
    batchSize: job.batchSize,
    staleness: { rule: job.staleness?.rule ?? 'inverse-sqrt', maxStaleness: job.staleness?.maxStaleness ?? 32 },
    stop: {
      // With only a target or a time limit, epochs still end it eventually.
      maxEpochs: job.stop.maxEpochs ?? (targets !== undefined ? 1000 : 10),
      targetAccuracy: job.stop.targetAccuracy ?? null,
      targetMae: job.stop.targetMae ?? null,
      targetRmse: job.stop.targetRmse ?? null,
      maxMinutes: job.stop.maxMinutes ?? null,
    },
    // About four evaluations per epoch (the evaluator also caps itself at 1/5 of the coordinator's time).
    evalEveryVersions: job.evalEveryVersions ?? Math.max(5, Math.ceil(shardsPerEpoch / 4)),
    leaseTimeoutMs: job.leaseTimeoutMs ?? 30_000,
    maxGradNorm: job.maxGradNorm ?? 1000,
    seed,
    aggregation: job.aggregation ? aggregationFor(job.aggregation) : DEFAULT_AGGREGATION,
    ...(job.weight !== undefined ? { weight: job.weight } : {}),
  });
  return { job, config, dataDir, initialWeights: model.weights, meta, model };
}

/** One gradient step on the coordinator, on the first rows of the training set: finite loss and gradients. */
async function proveTrainable(model: LoadedModel, spec: StepSpec, dataDir: string, batchSize: number): Promise<void> {
  const store = ShardStore.open(dataDir);
  let m: tf.LayersModel | null = null;
  try {
    m = await buildModel(model.topology);
    if (model.weights) {
      const w = model.weights;
      let o = 0;
      tf.tidy(() =>
        m!.setWeights(
          m!.weights.map((v) => {
            const shape = v.shape.map((d) => d ?? 1);
            const n = shape.reduce((a, b) => a * b, 1);
            const t = tf.tensor(w.subarray(o, o + n), shape, 'float32');
            o += n;
            return t;
          }),
        ),
      );
    }
    const n = Math.min(batchSize, store.count('train'));
    const rows = store.read('train', 0, n);
    let result: Awaited<ReturnType<typeof computeGradients>>;
    try {
      result = await computeGradients(m, spec, { x: rows.x, y: rows.y, numSamples: n });
    } catch (err) {
      throw new JobFileError(`the model cannot be trained on this data: one gradient step failed (${String(err instanceof Error ? err.message : err).split('\n')[0]}).`, 'model');
    }
    if (!Number.isFinite(result.loss)) throw new JobFileError(`the model cannot be trained on this data: the loss of the first batch is ${result.loss} (check the data's scale and the model's initial weights).`, 'model');
    if (!result.gradients.every(Number.isFinite)) throw new JobFileError('the model cannot be trained on this data: its first gradient is not finite (check the data\'s scale and the model\'s initial weights).', 'model');
  } finally {
    m?.dispose();
    store.close();
  }
}
