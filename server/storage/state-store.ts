// Durable coordinator state behind one small interface, so the training logic never knows which
// store it runs on: an embedded SQLite file by default (sqlite-state-store.ts), memory for tests,
// and a shared Redis store for several coordinators (redis-state-store.ts). One contract test suite
// (state-store.contract.ts) runs against every implementation.
//
// What lives here: jobs, the update log (every acknowledged gradient, durable BEFORE its ack, with
// the shard it completes: this is also the shard ledger), outstanding leases with deadlines,
// metric history, worker records and workers' spot-check trust records. Weights live in checkpoint
// files (checkpoint-store.ts).

import type { JobConfig } from '../jobs/job-config.ts';

export interface StoredJob {
  readonly id: string;
  readonly config: JobConfig;
  readonly createdAt: number;
}

/**
 * One accepted gradient. `version` is its position in the job's log (1, 2, 3...); `step` is the
 * model version whose optimizer step combines it (equal to `version` for async jobs, where every
 * gradient is one step; in buffered and local modes several records share a step, which is applied
 * once its last record is logged).
 */
export interface UpdateRecord {
  readonly jobId: string;
  readonly version: number;
  /** The model version this gradient is part of; absent/null in logs written before buffering (= version). */
  readonly step?: number | null | undefined;
  /**
   * The staleness discount applied to the gradient before the optimizer; absent/null in logs written
   * before the fix, whose `lr` carries the discount instead (replayed as such).
   */
  readonly scale?: number | null | undefined;
  /**
   * True: dropped from its step's buffer before that step was taken (its worker was quarantined),
   * so it is in no weights; replay re-admits it for its log position and norm, never into a step.
   * Absent/null/false: counted as logged. Its shard stays done (the ledger counts every record).
   */
  readonly excluded?: boolean | null | undefined;
  /**
   * A gateway's combined update (server/cluster/pre-aggregator.ts) is logged as one record per lease
   * it answers, in one turn: the last carries the float32 sum of all of them and `weight` = their
   * count; the ones before it carry no gradient and `weight` 0. Absent/null: one gradient (weight 1).
   */
  readonly weight?: number | null | undefined;
  readonly leaseId: string;
  readonly workerId: string;
  readonly epoch: number;
  readonly shard: number;
  readonly baseVersion: number;
  /** The learning rate the step used (old records: job lr x staleness scale): replay uses it verbatim. */
  readonly lr: number;
  readonly staleness: number;
  readonly samples: number;
  /** Training loss the worker reported; null when it was not a finite number. */
  readonly loss: number | null;
  readonly at: number;
  /** Packed float32 gradient; null once a checkpoint covers this version (then only the ledger row stays). */
  readonly gradient: Uint8Array | null;
}

export interface StoredLease {
  readonly jobId: string;
  readonly leaseId: string;
  readonly workerId: string;
  readonly epoch: number;
  readonly shard: number;
  readonly baseVersion: number;
  readonly grantedAt: number;
  readonly deadlineAt: number;
}

export interface StoredMetric {
  readonly jobId: string;
  readonly version: number;
  readonly testLoss: number;
  /** Classification jobs; null for regression. */
  readonly testAccuracy: number | null;
  /** Regression jobs; null for classification. */
  readonly testMae: number | null;
  readonly testRmse: number | null;
  readonly at: number;
  readonly ms: number;
}

export interface StoredWorker {
  readonly workerId: string;
  readonly firstSeenAt: number;
  readonly lastSeenAt: number;
  readonly capabilities: unknown;
  readonly leasesDone: number;
  readonly accepted: number;
  readonly refused: number;
  /** EWMA of milliseconds per example, lease granted -> gradient received (null: unknown yet). */
  readonly msPerSample: number | null;
}

/**
 * A worker's spot-check record (server/validation/spot-checker.ts): how far it is trusted, its
 * validated work (credit) and whether it is quarantined. Written only once a check changed it.
 */
export interface StoredTrust {
  readonly workerId: string;
  /** Consecutive validated results (reset by a fault): the check probability falls with it. */
  readonly validated: number;
  readonly totalValidated: number;
  readonly faults: number;
  /** Samples of validated work. */
  readonly creditSamples: number;
  readonly lastFault: string | null;
  /** Why it is quarantined, or null. */
  readonly quarantined: string | null;
  readonly updatedAt: number;
}

export interface StateStore {
  readonly kind: string;

  putJob(job: StoredJob): void;
  listJobs(): StoredJob[];

  /** Appends an update durably (the ack may be sent once this returns). Throws on a duplicate version or lease. */
  appendUpdate(u: UpdateRecord): void;
  /** Several records that must land together or not at all (one durable write; checked for duplicates first). */
  appendUpdates(us: readonly UpdateRecord[]): void;
  /** The update that answered `leaseId`, if any (idempotent pushes across restarts). */
  updateByLease(jobId: string, leaseId: string): UpdateRecord | null;
  /** Updates with version > `afterVersion`, ascending (replay after a crash). */
  updatesAfter(jobId: string, afterVersion: number): UpdateRecord[];
  /**
   * Marks these versions `excluded` (gradients dropped from the buffer before their step). Written in
   * the same group commit / write order as the records that follow, so no later record or checkpoint
   * is durable without it.
   */
  excludeUpdates(jobId: string, versions: readonly number[]): void;
  /** Drops the gradient blobs of versions <= `upToVersion` (a checkpoint now covers them). */
  compactUpdates(jobId: string, upToVersion: number): void;
  /** The shard ledger: (epoch, shard) -> how many updates completed it. */
  ledger(jobId: string, epoch: number): Map<number, number>;
  lastVersion(jobId: string): number | null;

  putLease(l: StoredLease): void;
  deleteLease(jobId: string, leaseId: string): void;
  listLeases(jobId: string): StoredLease[];

  appendMetric(m: StoredMetric): void;
  metrics(jobId: string): StoredMetric[];

  putWorker(w: StoredWorker): void;
  getWorker(workerId: string): StoredWorker | null;
  listWorkers(): StoredWorker[];
  /** Deletes these workers' records (unknown ids are ignored); returns how many were there. */
  deleteWorkers(workerIds: readonly string[]): number;

  /** Writes these trust records (each replaces the worker's previous one), in one batch. */
  putTrust(records: readonly StoredTrust[]): void;
  /** Every trust record, in no particular order. */
  listTrust(): StoredTrust[];

  /**
   * Resolves once every write made so far is durable (group commit in SQLite: writes of one
   * event-loop turn share a transaction, so FULL sync costs one fsync per batch; the Redis store
   * writes behind and resolves once Redis answered). Rejects when a write was refused (a stale
   * fencing token, a lost connection). Acknowledge a push only after it resolves.
   */
  durable(): Promise<void>;

  close(): void;
}
