// The dashboard's wire contract: the socket.io `/admin` namespace (typed event maps, payloads of
// the live feed) and the admin HTTP bodies (create a job, change settings). Shared by
// server/transport/admin-socket.ts, server/http/admin-api.ts and client/admin/.

import type { JobStatus } from './messages.ts';
import type { Failure } from './errors.ts';

export const ADMIN_NAMESPACE = '/admin';

/** One job's headline figures, as `JobRuntime.summary()` gives them plus the live settings. */
export interface JobView {
  readonly id: string;
  readonly name: string;
  readonly description: string;
  readonly status: JobStatus;
  readonly batchSize: number;
  readonly version: number;
  /** The epoch in progress, from 1 (as shown to people); maxEpochs once all are done. */
  readonly epoch: number;
  readonly maxEpochs: number;
  readonly targetAccuracy: number | null;
  /** 0..1 towards the stop condition. */
  readonly progress: number;
  readonly workers: number;
  readonly samplesPerSec: number;
  readonly task: 'classification' | 'regression';
  readonly metrics: { readonly testAccuracy: number | null; readonly testLoss: number | null; readonly testMae: number | null; readonly testRmse: number | null };
  readonly updates: { readonly applied: number; readonly refused: Readonly<Record<string, number>> };
  readonly shards: { readonly perEpoch: number; readonly done: number; readonly leased: number; readonly waiting: number };
  readonly samplesApplied: number;
  readonly createdAt: number;
  readonly finishedAt: number | null;
  readonly lastCheckpointVersion: number | null;
  /** The best evaluated version, kept for download whatever is pruned; null before an evaluation. */
  readonly best: { readonly version: number; readonly metric: 'testAccuracy' | 'testLoss'; readonly testAccuracy: number | null; readonly testLoss: number; readonly at: number } | null;
  /** Time spent running (pauses excluded), ms. */
  readonly activeMs: number;
  readonly learningRate: number;
  readonly maxStaleness: number;
  readonly stalenessRule: string;
  readonly optimizer: string;
  /** Scheduling weight: share of the volunteer pool relative to the other running jobs. */
  readonly weight: number;
  /** How gradients become steps (the job's `aggregation`); `text` is one line for people; `buffered` gradients wait for the next step. */
  readonly aggregation: {
    readonly mode: AggregationMode;
    readonly rule: string;
    readonly bufferSize: number;
    readonly localSteps: number | null;
    readonly text: string;
    readonly buffered: number;
  };
}

export type AggregationMode = 'async' | 'buffered' | 'local';

/** A job's `aggregation` at creation: the mode, and optionally its rule, buffer and local steps. */
export interface AggregationInput {
  readonly mode: AggregationMode;
  readonly rule?: 'mean' | 'median' | 'trimmed-mean' | 'centered-clip' | undefined;
  readonly bufferSize?: number | undefined;
  readonly localSteps?: number | undefined;
}

/** One row of the workers table; kept by server/jobs/worker-stats.ts. */
export interface WorkerRow {
  readonly workerId: string;
  readonly jobId: string | null;
  readonly runtime: 'browser' | 'node';
  readonly backend: string;
  /** "google swiftshader (software)", or null when the worker has no GPU adapter. */
  readonly adapter: string | null;
  /** Best gradient-step probe the worker reported at hello, samples/s; null when none. */
  readonly probeSamplesPerSec: number | null;
  /** Over the worker's recent pushes, samples/s. */
  readonly samplesPerSec: number;
  readonly leasesGranted: number;
  /** Leases answered with a gradient (accepted or refused). */
  readonly leasesDone: number;
  readonly accepted: number;
  readonly refused: number;
  /** Mean staleness of its accepted gradients; null before the first one. */
  readonly meanStaleness: number | null;
  readonly samples: number;
  readonly connectedAt: number;
  readonly lastSeenAt: number;
}

export interface EvalPoint {
  readonly version: number;
  readonly at: number;
  /** Classification jobs (null for regression). */
  readonly testAccuracy: number | null;
  readonly testLoss: number;
  /** Regression jobs (null for classification). */
  readonly testMae: number | null;
  readonly testRmse: number | null;
}

export interface LossPoint {
  readonly version: number;
  readonly loss: number;
}

/** Sampled about once a second per job by server/jobs/job-telemetry.ts; counts are cumulative. */
export interface TelemetryPoint {
  readonly at: number;
  readonly version: number;
  readonly samplesPerSec: number;
  readonly workers: number;
  readonly applied: number;
  readonly refused: Readonly<Record<string, number>>;
}

export interface WorkersChange {
  /** True: `rows` is the complete table (replace); false: upsert `rows` and drop `removed`. */
  readonly full: boolean;
  readonly rows: readonly WorkerRow[];
  readonly removed: readonly string[];
}

/** Everything the job page shows, at one instant: the answer to `job:watch`. */
export interface JobSnapshot {
  readonly job: JobView;
  readonly evaluations: readonly EvalPoint[];
  readonly trainLoss: readonly LossPoint[];
  readonly telemetry: readonly TelemetryPoint[];
  readonly staleness: readonly number[];
  readonly workers: readonly WorkerRow[];
  readonly sentAt: number;
}

/**
 * What changed since the previous delta for this job. Items may repeat what a snapshot already
 * held: clients merge by key (evaluation `at`, loss `version`, telemetry `at`, worker id).
 */
export interface JobDelta {
  readonly jobId: string;
  readonly job: JobView;
  readonly evaluations: readonly EvalPoint[];
  readonly trainLoss: readonly LossPoint[];
  readonly telemetry: readonly TelemetryPoint[];
  readonly staleness: readonly number[];
  /** Present at most about once a second (the table is the heaviest part). */
  readonly workers: WorkersChange | null;
  /** When the first change folded into this delta happened at the coordinator (epoch ms). */
  readonly eventAt: number;
  /** When the coordinator emitted it (epoch ms). */
  readonly sentAt: number;
}

export interface JobsOverview {
  readonly jobs: readonly JobView[];
  readonly eventAt: number;
  readonly sentAt: number;
}

export type WatchAck = { ok: true; snapshot: JobSnapshot } | Failure;
export type UnwatchAck = { ok: true } | Failure;

export interface AdminClientToServer {
  'job:watch': (req: { jobId: string }, ack: (res: WatchAck) => void) => void;
  'job:unwatch': (req: { jobId: string }, ack: (res: UnwatchAck) => void) => void;
}

export interface AdminServerToClient {
  'jobs:overview': (o: JobsOverview) => void;
  'job:delta': (d: JobDelta) => void;
}


// ---- HTTP bodies ----------------------------------------------------------------------------

/** Settings an admin may set at creation; all optional (the source's defaults apply). */
export interface JobSettingsInput {
  readonly name?: string | undefined;
  readonly description?: string | undefined;
  readonly learningRate?: number | undefined;
  readonly batchSize?: number | undefined;
  readonly maxStaleness?: number | undefined;
  readonly maxEpochs?: number | undefined;
  /** 0..1, or null for "no accuracy target". */
  readonly targetAccuracy?: number | null | undefined;
  /** Default: the robust buffered rule; `{ mode: 'async' }` for a trusted fleet. */
  readonly aggregation?: AggregationInput | undefined;
}

/**
 * Where a new job's model and data come from. Only built-in demos today; a job-file upload joins
 * as another `kind` (e.g. `{ kind: 'file', config: <job.json> }`) without changing the settings.
 */
export type JobSource = { readonly kind: 'demo'; readonly demo: string };

export interface CreateJobRequest {
  readonly id?: string | undefined;
  readonly source: JobSource;
  readonly settings: JobSettingsInput;
}

/** Changes while running: all optional; a missing one is left as is. */
export interface SettingsPatch {
  readonly learningRate?: number | undefined;
  readonly maxStaleness?: number | undefined;
  /** Share of the volunteer pool relative to the other running jobs, (0, 1000]. */
  readonly weight?: number | undefined;
}

/** A demo the create form offers, with its default settings. */
export interface DemoInfo {
  readonly name: string;
  readonly title: string;
  readonly description: string;
  readonly settings: Required<Omit<JobSettingsInput, 'name' | 'description' | 'aggregation'>>;
  /** The demo's aggregation (the robust default), and the local steps `local` mode would take. */
  readonly aggregation: { readonly mode: AggregationMode; readonly rule: NonNullable<AggregationInput['rule']>; readonly bufferSize: number; readonly localSteps: number };
}
