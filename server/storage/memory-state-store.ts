// In-memory StateStore: the reference implementation of the contract, for unit tests and for
// throwaway runs (FLOCK_STORE=memory). Nothing survives the process.

import type { StateStore, StoredJob, StoredLease, StoredMetric, StoredTrust, StoredWorker, UpdateRecord } from './state-store.ts';

export class MemoryStateStore implements StateStore {
  readonly kind = 'memory';
  private jobs = new Map<string, StoredJob>();
  private updates = new Map<string, UpdateRecord[]>();
  private leases = new Map<string, Map<string, StoredLease>>();
  private metricRows = new Map<string, StoredMetric[]>();
  private workers = new Map<string, StoredWorker>();
  private trust = new Map<string, StoredTrust>();

  putJob(job: StoredJob): void {
    this.jobs.set(job.id, structuredClone(job));
  }
  listJobs(): StoredJob[] {
    return [...this.jobs.values()].sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id));
  }

  appendUpdate(u: UpdateRecord): void {
    const list = this.updates.get(u.jobId) ?? [];
    if (list.some((x) => x.version === u.version || x.leaseId === u.leaseId)) throw new Error(`duplicate update v${u.version} / ${u.leaseId}`);
    list.push({ ...u, gradient: u.gradient ? u.gradient.slice() : null });
    list.sort((a, b) => a.version - b.version);
    this.updates.set(u.jobId, list);
  }
  appendUpdates(us: readonly UpdateRecord[]): void {
    for (const [i, u] of us.entries()) {
      const clash = (this.updates.get(u.jobId) ?? []).some((x) => x.version === u.version || x.leaseId === u.leaseId) || us.some((o, j) => j < i && o.jobId === u.jobId && (o.version === u.version || o.leaseId === u.leaseId));
      if (clash) throw new Error(`duplicate update v${u.version} / ${u.leaseId}`);
    }
    for (const u of us) this.appendUpdate(u);
  }
  updateByLease(jobId: string, leaseId: string): UpdateRecord | null {
    return this.updates.get(jobId)?.find((u) => u.leaseId === leaseId) ?? null;
  }
  updatesAfter(jobId: string, afterVersion: number): UpdateRecord[] {
    return (this.updates.get(jobId) ?? []).filter((u) => u.version > afterVersion);
  }
  excludeUpdates(jobId: string, versions: readonly number[]): void {
    const list = this.updates.get(jobId);
    if (!list || versions.length === 0) return;
    const drop = new Set(versions);
    this.updates.set(jobId, list.map((u) => (drop.has(u.version) ? { ...u, excluded: true } : u)));
  }
  compactUpdates(jobId: string, upToVersion: number): void {
    const list = this.updates.get(jobId);
    if (!list) return;
    this.updates.set(jobId, list.map((u) => (u.version <= upToVersion ? { ...u, gradient: null } : u)));
  }
  ledger(jobId: string, epoch: number): Map<number, number> {
    const m = new Map<number, number>();
    for (const u of this.updates.get(jobId) ?? []) if (u.epoch === epoch) m.set(u.shard, (m.get(u.shard) ?? 0) + 1);
    return m;
  }
  lastVersion(jobId: string): number | null {
    return this.updates.get(jobId)?.at(-1)?.version ?? null;
  }

  putLease(l: StoredLease): void {
    const m = this.leases.get(l.jobId) ?? new Map<string, StoredLease>();
    m.set(l.leaseId, { ...l });
    this.leases.set(l.jobId, m);
  }
  deleteLease(jobId: string, leaseId: string): void {
    this.leases.get(jobId)?.delete(leaseId);
  }
  listLeases(jobId: string): StoredLease[] {
    return [...(this.leases.get(jobId)?.values() ?? [])].sort((a, b) => a.grantedAt - b.grantedAt);
  }

  appendMetric(m: StoredMetric): void {
    const list = this.metricRows.get(m.jobId) ?? [];
    list.push({ ...m });
    this.metricRows.set(m.jobId, list);
  }
  metrics(jobId: string): StoredMetric[] {
    return [...(this.metricRows.get(jobId) ?? [])];
  }

  putWorker(w: StoredWorker): void {
    this.workers.set(w.workerId, structuredClone(w));
  }
  getWorker(workerId: string): StoredWorker | null {
    const w = this.workers.get(workerId);
    return w ? structuredClone(w) : null;
  }
  listWorkers(): StoredWorker[] {
    return [...this.workers.values()].map((w) => structuredClone(w));
  }
  deleteWorkers(workerIds: readonly string[]): number {
    let n = 0;
    for (const id of workerIds) if (this.workers.delete(id)) n++;
    return n;
  }

  putTrust(records: readonly StoredTrust[]): void {
    for (const r of records) this.trust.set(r.workerId, { ...r });
  }
  listTrust(): StoredTrust[] {
    return [...this.trust.values()].map((r) => ({ ...r }));
  }

  /** Forgets one job's update log, leases and metrics (the Redis mirror reloads a job with it). */
  dropJob(jobId: string): void {
    this.updates.delete(jobId);
    this.leases.delete(jobId);
    this.metricRows.delete(jobId);
  }

  durable(): Promise<void> {
    return Promise.resolve();
  }

  close(): void {}
}
