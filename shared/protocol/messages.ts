// Payloads exchanged between coordinator and workers, versioned by PROTOCOL_VERSION.
// Binary fields are one ArrayBuffer (browser) or Buffer (Node) described by TensorSpec[].

import type { BinaryLike, TensorSpec } from '../codec/tensor-codec.ts';
import type { Failure } from './errors.ts';
import type { DataSpec } from '../data/data-spec.ts';
import type { Encoding, WeightEncoding } from '../codec/compression.ts';
import type { RowCodec } from '../codec/rows-codec.ts';

export const PROTOCOL_VERSION = 2;

export const BACKENDS = ['webgpu', 'wasm', 'cpu', 'webgl'] as const;
export type BackendName = (typeof BACKENDS)[number];

export interface AdapterInfo {
  readonly vendor: string;
  readonly architecture: string;
  readonly description: string;
  readonly isFallbackAdapter: boolean;
}

export interface ProbeResult {
  readonly backend: BackendName;
  /** Gradient-step throughput of the job's model measured at start-up, samples/s. */
  readonly samplesPerSec: number;
  /** 'timeout': no step finished within its share of the budget (samplesPerSec: one batch over the time waited); 'failed': cannot train the model. */
  readonly status?: 'ok' | 'timeout' | 'failed' | undefined;
  /** WebGPU on a fallback (software) adapter. */
  readonly software?: boolean | undefined;
}

export interface WorkerCapabilities {
  readonly backend: BackendName;
  readonly adapter?: AdapterInfo | undefined;
  readonly wasmSimd?: boolean | undefined;
  readonly wasmThreads?: boolean | undefined;
  readonly userAgent?: string | undefined;
  readonly hardwareConcurrency?: number | undefined;
  readonly probes?: readonly ProbeResult[] | undefined;
  /** 'browser' tab / Web Worker, or 'node' contributor. */
  readonly runtime: 'browser' | 'node';
  /** Wire encodings this worker can decode (weights) and encode (gradients); absent: f32 only. */
  readonly codecs?: readonly Encoding[] | undefined;
  /** How this worker can take a lease's rows besides as they are (shared/codec/rows-codec.ts). */
  readonly rowCodecs?: readonly RowCodec[] | undefined;
}

export interface HelloRequest {
  readonly protocol: number;
  /**
   * The worker's own id, kept across reconnections (and coordinator restarts) so that its leases
   * and retried pushes are still recognised as its own. Random, 8-64 of [A-Za-z0-9_-].
   */
  readonly workerId?: string | undefined;
  /**
   * The credential the coordinator issued with `workerId` (HelloAck.credential). Without a valid
   * one the coordinator assigns a new id: ids are the server's, not the worker's choice.
   */
  readonly credential?: string | undefined;
  readonly capabilities: WorkerCapabilities;
}
/** `credential`: keep it with `workerId` and send both in every later hello (reconnections, restarts). */
export type HelloAck = { ok: true; workerId: string; serverTime: number; credential?: string } | Failure;

export const LOSSES = ['categoricalCrossentropy', 'binaryCrossentropy', 'meanSquaredError', 'meanAbsoluteError', 'huber'] as const;
/** Loss over a batch. Class targets travel as indices; categoricalCrossentropy one-hots them on the worker. */
export type LossName = (typeof LOSSES)[number];
export type TaskName = 'classification' | 'regression';

/** What a worker needs to know about a job to train it. */
export interface JobDescriptor {
  readonly id: string;
  readonly name: string;
  readonly description: string;
  /** tfjs Layers topology, as `model.toJSON(null, false)` returns it (parsed). */
  readonly modelTopology: unknown;
  readonly task: TaskName;
  readonly loss: LossName;
  /** The model outputs logits (no softmax/sigmoid on its last layer). */
  readonly fromLogits: boolean;
  readonly batchSize: number;
  /** How a lease's rows are laid out: feature shape and encoding, targets. */
  readonly data: DataSpec;
  /** The trainable weights in gradient order; a pushed gradient must match exactly. */
  readonly trainableSpecs: readonly TensorSpec[];
}

export interface JobGetRequest {
  readonly jobId?: string | undefined;
}
export type JobGetAck = { ok: true; job: JobDescriptor } | Failure;

export interface LeaseRequest {
  readonly jobId?: string | undefined;
  /** Version of the weights the worker already holds for this job, or null. */
  readonly cachedVersion: number | null;
  /** True: the worker did not pin a job and may be answered JOB_REASSIGNED (absent: pinned, as before). */
  readonly movable?: boolean | undefined;
  /** The worker keeps rows across epochs: send only rows this cache does not hold. */
  readonly rowCache?: RowCacheClaim | undefined;
}

/** A worker's row cache (shared/training/row-cache.ts): its id and the rows it promises to keep. */
export interface RowCacheClaim {
  readonly id: string;
  readonly capacity: number;
}

export interface WeightsPayload {
  readonly version: number;
  /** The float32 tensors the data stands for. */
  readonly specs: readonly TensorSpec[];
  readonly data: BinaryLike;
  /** How `data` is encoded (shared/codec/compression.ts); absent: f32. */
  readonly encoding?: WeightEncoding | undefined;
  /**
   * Present: `data` is the change since this version (the worker's cached one), int8 with a
   * per-tensor scale; the worker adds it to the weights it holds.
   */
  readonly deltaFrom?: number | undefined;
}

export interface LeasePayload {
  readonly leaseId: string;
  readonly jobId: string;
  /** The shard ledger's epoch index, from 0 (pages show it + 1). */
  readonly epoch: number;
  readonly shardIndex: number;
  readonly baseVersion: number;
  readonly deadlineAt: number;
  readonly numSamples: number;
  /** Feature rows, numSamples x featureShape, encoded as JobDescriptor.data.features says. */
  readonly x: BinaryLike;
  /** Target rows, numSamples, as JobDescriptor.data.target says. */
  readonly y: BinaryLike;
  /**
   * Jobs aggregated in `local` mode (DiLoCo): take `steps` optimizer steps over the shard, `batchSize`
   * examples each, with this inner optimizer, and push weights-before minus weights-after (the
   * pseudo-gradient) instead of a gradient. Absent: push the gradient of the whole shard.
   */
  readonly local?: LocalSteps | undefined;
  /**
   * With a row cache: the lease's row ids (uint32, in batch order) and the positions (uint32, into
   * rowIds) of the rows that travel in x/y; the others are in the worker's cache. Absent: x/y hold
   * every row, as before.
   */
  readonly rowIds?: BinaryLike | undefined;
  readonly fresh?: BinaryLike | undefined;
  /**
   * 'deflate-raw': x and y are each compressed with raw DEFLATE (shared/codec/rows-codec.ts; only
   * to a worker that announced it in capabilities.rowCodecs). Absent: as they are.
   */
  readonly rowsEncoding?: RowCodec | undefined;
  /** The encoding the gradient for this lease should travel in (negotiated); absent: f32. */
  readonly gradientEncoding?: Encoding | undefined;
  /** For 'topk': the fraction of coordinates to send. */
  readonly topkRatio?: number | undefined;
}

export interface LocalSteps {
  readonly steps: number;
  readonly batchSize: number;
  readonly optimizer: InnerOptimizer;
}

export type InnerOptimizer =
  | { readonly kind: 'adam'; readonly learningRate: number; readonly beta1?: number | undefined; readonly beta2?: number | undefined; readonly epsilon?: number | undefined }
  | { readonly kind: 'sgd'; readonly learningRate: number; readonly momentum?: number | undefined; readonly nesterov?: boolean | undefined };

export type LeaseAck =
  | { ok: true; lease: LeasePayload; weights: WeightsPayload | null }
  | Failure;

export interface GradientPush {
  readonly leaseId: string;
  readonly baseVersion: number;
  readonly numSamples: number;
  /** Mean training loss over the shard, as the worker measured it (null: not finite). */
  readonly loss: number | null;
  readonly computeMs: number;
  readonly specs: readonly TensorSpec[];
  readonly data: BinaryLike;
  /** How `data` is encoded; absent: f32. Decoded to float32 before anything else looks at it. */
  readonly encoding?: Encoding | undefined;
}

/**
 * 'applied': the gradient is in the weights of `version`; 'buffered': it is durable and waits in the
 * job's buffer for the step that makes `version` (buffered and local modes); 'duplicate': a retry.
 */
export type PushStatus = 'applied' | 'buffered' | 'duplicate';
export type PushAck =
  | { ok: true; status: PushStatus; version: number; staleness: number; scale: number }
  | Failure;

export interface LeaseRelease {
  readonly leaseId: string;
}
export type ReleaseAck = { ok: true } | Failure;

export interface RefuseJob {
  readonly jobId: string;
  readonly reason: string;
}
export type SimpleAck = { ok: true } | Failure;

/** Pushed to workers whenever a job's headline figures change. */
export interface JobUpdate {
  readonly jobId: string;
  readonly status: JobStatus;
  readonly version: number;
  /** The epoch in progress, from 1 (as shown to people); maxEpochs once all are done. */
  readonly epoch: number;
  readonly progress: number;
  readonly testAccuracy: number | null;
  readonly testLoss: number | null;
  /** Regression jobs: the latest test MAE (null for classification). */
  readonly testMae?: number | null | undefined;
}

export const JOB_STATUSES = ['running', 'paused', 'finished', 'cancelled'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
