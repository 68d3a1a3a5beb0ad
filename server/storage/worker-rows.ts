// Pruning of durable worker records. A record of a worker that never completed a lease holds nothing
// a later start uses (no measured speed, no counts): such records were written on every hello
// before hellos stopped writing them, and still are by a transport without a gate. Which records go
// is a pure decision (workerRowsToPrune); pruneWorkerRows applies it, and the coordinator calls it at
// start-up (with Redis: when elected owner) and then every `everyMs`.

import type { Clock } from '../../shared/clock.ts';
import type { StateStore, StoredWorker } from './state-store.ts';

export interface WorkerRowPolicy {
  /** A record with no completed lease goes once it was last seen this long ago (ms). */
  readonly maxIdleMs: number;
  /** How often a running coordinator prunes again (ms). */
  readonly everyMs: number;
}

export const DEFAULT_WORKER_ROW_POLICY: WorkerRowPolicy = { maxIdleMs: 24 * 3600_000, everyMs: 3600_000 };

/** Ids of the records to delete at `now`: no lease completed, last seen at least maxIdleMs ago. */
export function workerRowsToPrune(rows: readonly StoredWorker[], now: number, policy: Pick<WorkerRowPolicy, 'maxIdleMs'>): string[] {
  return rows.filter((w) => w.leasesDone === 0 && now - w.lastSeenAt >= policy.maxIdleMs).map((w) => w.workerId);
}

/** Deletes what workerRowsToPrune picks; returns how many records went. */
export function pruneWorkerRows(state: StateStore, clock: Clock, policy: Pick<WorkerRowPolicy, 'maxIdleMs'> = DEFAULT_WORKER_ROW_POLICY): number {
  const ids = workerRowsToPrune(state.listWorkers(), clock.now(), policy);
  return ids.length === 0 ? 0 : state.deleteWorkers(ids);
}
