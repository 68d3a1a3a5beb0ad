// The job file: the user-facing description of a job (README "Train your own model"). Its schema,
// the model files it points at (a tfjs Layers model.json with its weight files), and the pure
// decisions that turn the model's output layer and the task into a loss. Each refusal is a
// JobFileError: one sentence naming the key or file at fault.

import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { tf } from '../../shared/training/tf.ts';
import { packWeights } from '../../shared/training/model.ts';
import { DataSection, Preprocessing } from '../data/ingest/data-section.ts';
import { STALENESS_RULES } from '../aggregation/staleness.ts';
import { AggregationSchema } from '../aggregation/aggregation-config.ts';
import type { LossName, TaskName } from '../../shared/protocol/messages.ts';

/** A refused job file. `field` is the job-file key at fault (the dashboard shows the message next to it). */
export class JobFileError extends Error {
  override readonly name = 'JobFileError';
  constructor(
    message: string,
    readonly field: string | null = null,
  ) {
    super(message);
  }
}

/** Loss names a job file may give, with their short aliases. */
const LOSS_ALIASES: Record<string, LossName> = {
  categoricalCrossentropy: 'categoricalCrossentropy',
  sparseCategoricalCrossentropy: 'categoricalCrossentropy',
  crossentropy: 'categoricalCrossentropy',
  binaryCrossentropy: 'binaryCrossentropy',
  meanSquaredError: 'meanSquaredError',
  mse: 'meanSquaredError',
  meanAbsoluteError: 'meanAbsoluteError',
  mae: 'meanAbsoluteError',
  huber: 'huber',
};

const positive = z.number().finite().positive();

export const JobFileSchema = z
  .object({
    name: z.string().trim().min(1).max(200),
    description: z.string().max(2000).optional(),
    /** Path of a tfjs Layers model.json (weights next to it, as its manifest says). */
    model: z.string().min(1),
    data: DataSection,
    task: z.enum(['classification', 'regression']),
    loss: z.enum(Object.keys(LOSS_ALIASES) as [string, ...string[]]).optional(),
    preprocessing: Preprocessing.optional(),
    optimizer: z
      .discriminatedUnion('kind', [
        z.object({ kind: z.literal('adam'), learningRate: positive.max(10), beta1: z.number().min(0).max(1).optional(), beta2: z.number().min(0).max(1).optional(), epsilon: positive.optional() }).strict(),
        z.object({ kind: z.literal('sgd'), learningRate: positive.max(10), momentum: z.number().min(0).max(1).optional(), nesterov: z.boolean().optional() }).strict(),
      ])
      .default({ kind: 'adam', learningRate: 0.001 }),
    batchSize: z.number().int().min(1).max(65_536).default(32),
    stop: z
      .object({
        maxEpochs: z.number().int().min(1).max(100_000).optional(),
        targetAccuracy: z.number().gt(0).max(1).optional(),
        targetMae: z.number().nonnegative().optional(),
        targetRmse: z.number().nonnegative().optional(),
        maxMinutes: positive.optional(),
      })
      .strict()
      .default({}),
    staleness: z.object({ rule: z.enum(STALENESS_RULES).optional(), maxStaleness: z.number().int().min(0).max(100_000).optional() }).strict().optional(),
    /** Share of the volunteers' work relative to other jobs (fair share); default 1. */
    weight: positive.max(1000).optional(),
    seed: z.number().int().min(0).max(2 ** 31).optional(),
    evalEveryVersions: z.number().int().min(1).max(1_000_000).optional(),
    leaseTimeoutMs: z.number().int().min(100).max(3_600_000).optional(),
    maxGradNorm: positive.optional(),
    /**
     * How gradients become steps: `{ "mode": "buffered" | "async" | "local", "rule"?, "bufferSize"?,
     * "localSteps"?, ... }` (server/aggregation/aggregation-config.ts). Default: robust buffered.
     */
    aggregation: AggregationSchema.partial().required({ mode: true }).strict().optional(),
  })
  .strict();

export type JobFile = z.infer<typeof JobFileSchema>;

/** Parses a job file's text; the message names the key at fault. */
export function parseJobFile(text: string, fileName = 'job file'): JobFile {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new JobFileError(`${fileName} is not valid JSON: ${(err as Error).message}.`);
  }
  const r = JobFileSchema.safeParse(raw);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const key = issue.path.join('.');
  const what = issue.code === 'unrecognized_keys' ? `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${String(k)}"`).join(', ')}` : issue.message;
  throw new JobFileError(`${fileName}: ${key ? `"${key}": ` : ''}${what}.`, key || null);
}

/** Every file a job file refers to, relative to its folder (for upload); folders end with '/'. */
export function referencedPaths(job: JobFile, modelManifestPaths: readonly string[]): string[] {
  const out = new Set<string>([job.model]);
  const modelDir = path.posix.dirname(job.model.replaceAll('\\', '/'));
  for (const p of modelManifestPaths) out.add(path.posix.join(modelDir, p));
  for (const split of [job.data.train, job.data.test]) {
    if (split === undefined) continue;
    for (const f of typeof split === 'string' ? [split] : Object.values(split)) out.add(f);
  }
  return [...out];
}

export interface LoadedModel {
  /** Normalised topology (model.toJSON(null, false)): what workers build. */
  readonly topology: Record<string, unknown>;
  /** Input shape without the batch dimension. */
  readonly inputShape: number[];
  readonly outputUnits: number;
  /** Activation of the output: 'softmax', 'sigmoid', 'linear', ... */
  readonly outputActivation: string;
  /** All weights (trainable first) when the file came with weights, else null. */
  readonly weights: Float32Array | null;
  readonly params: number;
  readonly bytes: number;
}

interface ModelJson {
  format?: string;
  modelTopology?: unknown;
  weightsManifest?: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];
}

/** The weight file paths a model.json lists (relative to it). */
export function manifestPaths(modelJson: unknown): string[] {
  const m = modelJson as ModelJson;
  return (m.weightsManifest ?? []).flatMap((g) => (Array.isArray(g.paths) ? g.paths.filter((p) => typeof p === 'string') : []));
}

/** Reads a tfjs Layers model.json and its weight files from disk, and what the job needs of it. */
export async function loadModelFile(file: string, maxBytes: number): Promise<LoadedModel> {
  const shown = path.basename(file);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new JobFileError(`model file ${file} cannot be read (does it exist?).`, 'model');
  }
  let json: ModelJson;
  try {
    json = JSON.parse(text) as ModelJson;
  } catch {
    throw new JobFileError(`model file ${shown} is not JSON: expected a tfjs Layers model.json (what model.save() or tensorflowjs_converter writes).`, 'model');
  }
  if (json.format !== undefined && json.format !== 'layers-model') {
    throw new JobFileError(`model file ${shown} is a "${json.format}", not a "layers-model": convert it with tensorflowjs_converter --output_format=tfjs_layers_model.`, 'model');
  }
  if (typeof json.modelTopology !== 'object' || json.modelTopology === null) throw new JobFileError(`model file ${shown} has no modelTopology.`, 'model');
  const specs = (json.weightsManifest ?? []).flatMap((g) => g.weights ?? []);
  const quantized = specs.find((w) => w.quantization);
  if (quantized) throw new JobFileError(`model file ${shown}: weight ${quantized.name} is quantized; export the model with float32 weights to train it.`, 'model');
  const parts: Uint8Array[] = [];
  let bytes = text.length;
  const tooBig = (): JobFileError => new JobFileError(`model ${shown} is over the size limit of ${fmtBytes(maxBytes)} (FLOCK_MAX_MODEL_BYTES).`, 'model');
  if (bytes > maxBytes) throw tooBig();
  for (const p of manifestPaths(json)) {
    const wf = path.join(path.dirname(file), p);
    let size: number;
    try {
      size = (await stat(wf)).size;
    } catch {
      throw new JobFileError(`weight file ${p} listed in ${shown} is missing.`, 'model');
    }
    bytes += size;
    if (bytes > maxBytes) throw tooBig();
    parts.push(await readFile(wf));
  }
  let weightData: ArrayBuffer | undefined;
  if (parts.length > 0) {
    const all = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
    let o = 0;
    for (const p of parts) {
      all.set(p, o);
      o += p.byteLength;
    }
    weightData = all.buffer;
  }
  let model: tf.LayersModel;
  try {
    model = await tf.loadLayersModel(tf.io.fromMemory({ modelTopology: json.modelTopology as object, weightSpecs: specs, ...(weightData ? { weightData } : {}) }));
  } catch (err) {
    throw new JobFileError(`model file ${shown} cannot be loaded by TensorFlow.js: ${firstLine(err)}.`, 'model');
  }
  try {
    if (model.inputs.length !== 1 || model.outputs.length !== 1) throw new JobFileError(`model ${shown} has ${model.inputs.length} inputs and ${model.outputs.length} outputs; Flock trains models with one input and one output.`, 'model');
    const inShape = model.inputs[0]!.shape.slice(1);
    if (inShape.some((d) => d === null || d <= 0)) throw new JobFileError(`model ${shown} has input shape [${model.inputs[0]!.shape.map((d) => d ?? 'None').join(', ')}]; every dimension but the batch must be fixed.`, 'model');
    const outShape = model.outputs[0]!.shape;
    const outputUnits = outShape[outShape.length - 1] ?? 0;
    if (outShape.length !== 2 || !outputUnits) throw new JobFileError(`model ${shown} outputs shape [${outShape.map((d) => d ?? 'None').join(', ')}]; Flock expects [batch, units].`, 'model');
    const topology = model.toJSON(null, false) as unknown as Record<string, unknown>;
    const weights = weightData ? (await packWeights(model)).data.slice() : null;
    const params = model.countParams();
    return { topology, inputShape: inShape as number[], outputUnits, outputActivation: outputActivation(model), weights, params, bytes };
  } finally {
    model.dispose();
  }
}

/** The activation applied last: the last layer's own `activation`, or an Activation/Softmax layer. */
function outputActivation(model: tf.LayersModel): string {
  const last = model.layers[model.layers.length - 1]!;
  const cls = last.getClassName();
  if (cls === 'Softmax') return 'softmax';
  const cfg = last.getConfig() as { activation?: unknown };
  if (typeof cfg.activation === 'string') return cfg.activation;
  return 'linear';
}

export type LossDecision = { readonly loss: LossName; readonly fromLogits: boolean; readonly binary: boolean };

/**
 * The loss for a task and an output layer (pure): softmax over k >= 2 units -> categorical
 * cross-entropy; one sigmoid unit -> binary cross-entropy; a linear output -> the same from logits;
 * regression -> MSE unless the file names MAE or Huber. Throws JobFileError when they do not fit.
 */
export function decideLoss(task: TaskName, units: number, activation: string, requested?: string): LossDecision {
  const asked = requested === undefined ? undefined : LOSS_ALIASES[requested];
  if (task === 'regression') {
    if (activation === 'softmax') throw new JobFileError(`the model's output layer uses softmax, which makes its outputs sum to 1: that does not fit a regression task (use a linear output).`, 'task');
    if (asked === 'categoricalCrossentropy' || asked === 'binaryCrossentropy') throw new JobFileError(`loss "${requested}" is for classification; a regression task takes mse, mae or huber.`, 'loss');
    return { loss: asked ?? 'meanSquaredError', fromLogits: false, binary: false };
  }
  if (asked && asked !== 'categoricalCrossentropy' && asked !== 'binaryCrossentropy') throw new JobFileError(`loss "${requested}" is for regression; a classification task takes a cross-entropy.`, 'loss');
  const fromLogits = activation === 'linear';
  if (units === 1) {
    if (activation !== 'sigmoid' && !fromLogits) throw new JobFileError(`the model's output is one unit with ${activation} activation: binary classification needs one sigmoid unit (or a linear one for logits), or softmax over two units.`, 'task');
    if (asked === 'categoricalCrossentropy') throw new JobFileError(`loss "${requested}" needs two or more output units; one sigmoid unit takes binaryCrossentropy.`, 'loss');
    return { loss: 'binaryCrossentropy', fromLogits, binary: true };
  }
  if (activation !== 'softmax' && !fromLogits) throw new JobFileError(`the model's output layer has ${units} units with ${activation} activation: classification needs softmax (or a linear output for logits).`, 'task');
  if (asked === 'binaryCrossentropy') throw new JobFileError(`loss "binaryCrossentropy" needs one sigmoid output unit; this model has ${units} outputs (use categoricalCrossentropy).`, 'loss');
  return { loss: 'categoricalCrossentropy', fromLogits, binary: false };
}

export function fmtBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(1)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  if (n >= 2 ** 10) return `${(n / 2 ** 10).toFixed(1)} KiB`;
  return `${n} B`;
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0]!.replace(/\.$/, '');
}
