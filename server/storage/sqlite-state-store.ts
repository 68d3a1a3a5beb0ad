// SQLite StateStore (better-sqlite3, WAL mode): the default durable store, one file in the data
// directory. Group commit: the writes of one event-loop turn (every push, grant and worker record that
// arrived together) share one transaction, committed on the next turn; callers acknowledge only after
// durable() resolves. synchronous=NORMAL survives a killed process (the WAL is in the OS cache);
// FLOCK_SQLITE_SYNC=FULL also survives power loss, at one fsync per batch of pushes.

import Database from 'better-sqlite3';
import { WalCheckpointer } from './wal-checkpointer.ts';
import type { StateStore, StoredJob, StoredLease, StoredMetric, StoredTrust, StoredWorker, UpdateRecord } from './state-store.ts';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY, config TEXT NOT NULL, created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS updates (
  job_id TEXT NOT NULL, version INTEGER NOT NULL, lease_id TEXT NOT NULL, worker_id TEXT NOT NULL,
  epoch INTEGER NOT NULL, shard INTEGER NOT NULL, base_version INTEGER NOT NULL, lr REAL NOT NULL,
  staleness INTEGER NOT NULL, samples INTEGER NOT NULL, loss REAL, at INTEGER NOT NULL,
  gradient BLOB, step INTEGER, scale REAL, excluded INTEGER, weight INTEGER,
  PRIMARY KEY (job_id, version)
);
CREATE UNIQUE INDEX IF NOT EXISTS updates_by_lease ON updates (job_id, lease_id);
CREATE INDEX IF NOT EXISTS updates_by_shard ON updates (job_id, epoch, shard);
CREATE TABLE IF NOT EXISTS leases (
  job_id TEXT NOT NULL, lease_id TEXT NOT NULL, worker_id TEXT NOT NULL, epoch INTEGER NOT NULL,
  shard INTEGER NOT NULL, base_version INTEGER NOT NULL, granted_at INTEGER NOT NULL, deadline_at INTEGER NOT NULL,
  PRIMARY KEY (job_id, lease_id)
);
CREATE TABLE IF NOT EXISTS metrics (
  job_id TEXT NOT NULL, version INTEGER NOT NULL, test_loss REAL NOT NULL, test_accuracy REAL,
  at INTEGER NOT NULL, ms REAL NOT NULL, test_mae REAL, test_rmse REAL
);
CREATE INDEX IF NOT EXISTS metrics_by_job ON metrics (job_id, at);
CREATE TABLE IF NOT EXISTS workers (
  worker_id TEXT PRIMARY KEY, first_seen_at INTEGER NOT NULL, last_seen_at INTEGER NOT NULL,
  capabilities TEXT NOT NULL, leases_done INTEGER NOT NULL, accepted INTEGER NOT NULL,
  refused INTEGER NOT NULL, ms_per_sample REAL
);
CREATE TABLE IF NOT EXISTS trust (
  worker_id TEXT PRIMARY KEY, validated INTEGER NOT NULL, total_validated INTEGER NOT NULL,
  faults INTEGER NOT NULL, credit_samples INTEGER NOT NULL, last_fault TEXT, quarantined TEXT,
  updated_at INTEGER NOT NULL
);
`;

interface UpdateRow {
  job_id: string; version: number; lease_id: string; worker_id: string; epoch: number; shard: number;
  base_version: number; lr: number; staleness: number; samples: number; loss: number | null; at: number; gradient: Buffer | null;
  step: number | null; scale: number | null; excluded: number | null; weight: number | null;
}
interface LeaseRow {
  job_id: string; lease_id: string; worker_id: string; epoch: number; shard: number; base_version: number; granted_at: number; deadline_at: number;
}
interface TrustRow {
  worker_id: string; validated: number; total_validated: number; faults: number; credit_samples: number; last_fault: string | null; quarantined: string | null; updated_at: number;
}
interface WorkerRow {
  worker_id: string; first_seen_at: number; last_seen_at: number; capabilities: string; leases_done: number; accepted: number; refused: number; ms_per_sample: number | null;
}

const toUpdate = (r: UpdateRow): UpdateRecord => ({
  jobId: r.job_id, version: r.version, step: r.step, scale: r.scale, ...(r.excluded ? { excluded: true } : {}), ...(r.weight != null ? { weight: r.weight } : {}), leaseId: r.lease_id, workerId: r.worker_id, epoch: r.epoch, shard: r.shard,
  baseVersion: r.base_version, lr: r.lr, staleness: r.staleness, samples: r.samples, loss: r.loss, at: r.at,
  gradient: r.gradient ? new Uint8Array(r.gradient.buffer, r.gradient.byteOffset, r.gradient.byteLength) : null,
});

export class SqliteStateStore implements StateStore {
  readonly kind = 'sqlite';
  private readonly db: Database.Database;
  private readonly q;
  /** The open group-commit transaction, and who waits for its COMMIT. */
  private batch: { done: Promise<void>; resolve: () => void; reject: (e: Error) => void } | null = null;
  /** Batches committed so far (tests: several pushes, one commit). */
  commits = 0;
  /** About how many bytes the open batch wrote (tells the WAL checkpointer when one is due). */
  private batchBytes = 0;
  /** WAL checkpoints in a worker thread (null: not a WAL database, e.g. in memory). */
  readonly walCheckpoints: WalCheckpointer | null = null;

  /** `walCheckpointBytes`: bytes committed between WAL checkpoints (tests make it small). */
  constructor(file: string, sync: 'NORMAL' | 'FULL' = 'NORMAL', walCheckpointBytes?: number) {
    this.db = new Database(file);
    const wal = this.db.pragma('journal_mode = WAL', { simple: true }) === 'wal';
    if (wal) {
      // Checkpoints off the event loop (wal-checkpointer.ts); SQLite's own again if the thread fails.
      this.db.pragma('wal_autocheckpoint = 0');
      // After the WAL rewinds, its file is cut back to this size (else it keeps its largest size).
      this.db.pragma('journal_size_limit = 33554432');
      this.walCheckpoints = new WalCheckpointer({
        file,
        ...(walCheckpointBytes !== undefined ? { everyBytes: walCheckpointBytes } : {}),
        fallback: (reason) => {
          if (this.db.open) this.db.pragma('wal_autocheckpoint = 1000');
          process.emitWarning(`SQLite store: ${reason}; checkpoints run on the main thread again`);
        },
      });
    }
    this.db.pragma(`synchronous = ${sync}`);
    this.db.pragma('busy_timeout = 5000');
    this.migrate();
    this.db.exec(SCHEMA);
    const db = this.db;
    this.q = {
      putJob: db.prepare('INSERT OR REPLACE INTO jobs (id, config, created_at) VALUES (?, ?, ?)'),
      listJobs: db.prepare('SELECT id, config, created_at FROM jobs ORDER BY created_at, id'),
      appendUpdate: db.prepare(
        'INSERT INTO updates (job_id, version, step, scale, excluded, weight, lease_id, worker_id, epoch, shard, base_version, lr, staleness, samples, loss, at, gradient) VALUES (@jobId, @version, @step, @scale, @excluded, @weight, @leaseId, @workerId, @epoch, @shard, @baseVersion, @lr, @staleness, @samples, @loss, @at, @gradient)',
      ),
      updateByLease: db.prepare('SELECT * FROM updates WHERE job_id = ? AND lease_id = ?'),
      updatesAfter: db.prepare('SELECT * FROM updates WHERE job_id = ? AND version > ? ORDER BY version'),
      exclude: db.prepare('UPDATE updates SET excluded = 1 WHERE job_id = ? AND version = ?'),
      compact: db.prepare('UPDATE updates SET gradient = NULL WHERE job_id = ? AND version <= ? AND gradient IS NOT NULL'),
      ledger: db.prepare('SELECT shard, COUNT(*) AS n FROM updates WHERE job_id = ? AND epoch = ? GROUP BY shard'),
      lastVersion: db.prepare('SELECT MAX(version) AS v FROM updates WHERE job_id = ?'),
      putLease: db.prepare(
        'INSERT OR REPLACE INTO leases (job_id, lease_id, worker_id, epoch, shard, base_version, granted_at, deadline_at) VALUES (@jobId, @leaseId, @workerId, @epoch, @shard, @baseVersion, @grantedAt, @deadlineAt)',
      ),
      deleteLease: db.prepare('DELETE FROM leases WHERE job_id = ? AND lease_id = ?'),
      listLeases: db.prepare('SELECT * FROM leases WHERE job_id = ? ORDER BY granted_at'),
      appendMetric: db.prepare('INSERT INTO metrics (job_id, version, test_loss, test_accuracy, test_mae, test_rmse, at, ms) VALUES (@jobId, @version, @testLoss, @testAccuracy, @testMae, @testRmse, @at, @ms)'),
      metrics: db.prepare('SELECT * FROM metrics WHERE job_id = ? ORDER BY at, version'),
      putWorker: db.prepare(
        'INSERT OR REPLACE INTO workers (worker_id, first_seen_at, last_seen_at, capabilities, leases_done, accepted, refused, ms_per_sample) VALUES (@workerId, @firstSeenAt, @lastSeenAt, @capabilities, @leasesDone, @accepted, @refused, @msPerSample)',
      ),
      getWorker: db.prepare('SELECT * FROM workers WHERE worker_id = ?'),
      listWorkers: db.prepare('SELECT * FROM workers ORDER BY first_seen_at'),
      deleteWorker: db.prepare('DELETE FROM workers WHERE worker_id = ?'),
      putTrust: db.prepare(
        'INSERT OR REPLACE INTO trust (worker_id, validated, total_validated, faults, credit_samples, last_fault, quarantined, updated_at) VALUES (@workerId, @validated, @totalValidated, @faults, @creditSamples, @lastFault, @quarantined, @updatedAt)',
      ),
      listTrust: db.prepare('SELECT * FROM trust'),
    };
  }

  putJob(job: StoredJob): void {
    this.begin();
    this.q.putJob.run(job.id, JSON.stringify(job.config), job.createdAt);
  }
  listJobs(): StoredJob[] {
    return (this.q.listJobs.all() as { id: string; config: string; created_at: number }[]).map((r) => ({ id: r.id, config: JSON.parse(r.config), createdAt: r.created_at }));
  }

  appendUpdate(u: UpdateRecord): void {
    this.begin(u.gradient?.byteLength ?? 0);
    this.q.appendUpdate.run({ ...u, step: u.step ?? null, scale: u.scale ?? null, excluded: u.excluded ? 1 : null, weight: u.weight ?? null, gradient: u.gradient ? Buffer.from(u.gradient.buffer, u.gradient.byteOffset, u.gradient.byteLength) : null });
  }
  appendUpdates(us: readonly UpdateRecord[]): void {
    this.begin();
    // A savepoint inside the turn's transaction: a duplicate anywhere rolls back the whole batch.
    this.db.transaction(() => {
      for (const u of us) this.appendUpdate(u);
    })();
  }
  updateByLease(jobId: string, leaseId: string): UpdateRecord | null {
    const r = this.q.updateByLease.get(jobId, leaseId) as UpdateRow | undefined;
    return r ? toUpdate(r) : null;
  }
  updatesAfter(jobId: string, afterVersion: number): UpdateRecord[] {
    return (this.q.updatesAfter.all(jobId, afterVersion) as UpdateRow[]).map(toUpdate);
  }
  excludeUpdates(jobId: string, versions: readonly number[]): void {
    if (versions.length === 0) return;
    this.begin();
    for (const v of versions) this.q.exclude.run(jobId, v);
  }
  compactUpdates(jobId: string, upToVersion: number): void {
    this.begin();
    this.q.compact.run(jobId, upToVersion);
  }
  ledger(jobId: string, epoch: number): Map<number, number> {
    return new Map((this.q.ledger.all(jobId, epoch) as { shard: number; n: number }[]).map((r) => [r.shard, r.n]));
  }
  lastVersion(jobId: string): number | null {
    return (this.q.lastVersion.get(jobId) as { v: number | null }).v;
  }

  putLease(l: StoredLease): void {
    this.begin();
    this.q.putLease.run(l);
  }
  deleteLease(jobId: string, leaseId: string): void {
    this.begin();
    this.q.deleteLease.run(jobId, leaseId);
  }
  listLeases(jobId: string): StoredLease[] {
    return (this.q.listLeases.all(jobId) as LeaseRow[]).map((r) => ({
      jobId: r.job_id, leaseId: r.lease_id, workerId: r.worker_id, epoch: r.epoch, shard: r.shard, baseVersion: r.base_version, grantedAt: r.granted_at, deadlineAt: r.deadline_at,
    }));
  }

  /**
   * Data folders written before regression jobs existed have a metrics table whose accuracy is NOT
   * NULL and no MAE/RMSE columns: rebuild it once, keeping its rows.
   */
  private migrate(): void {
    // Logs written before buffered aggregation: add the step and discount columns (null = legacy).
    const updateCols = this.db.prepare("SELECT name FROM pragma_table_info('updates')").all() as { name: string }[];
    if (updateCols.length > 0 && !updateCols.some((c) => c.name === 'step')) this.db.exec('ALTER TABLE updates ADD COLUMN step INTEGER; ALTER TABLE updates ADD COLUMN scale REAL;');
    // Logs written before quarantined workers' buffered gradients were dropped: add the mark (null = kept).
    if (updateCols.length > 0 && !updateCols.some((c) => c.name === 'excluded')) this.db.exec('ALTER TABLE updates ADD COLUMN excluded INTEGER;');
    if (updateCols.length > 0 && !updateCols.some((c) => c.name === 'weight')) this.db.exec('ALTER TABLE updates ADD COLUMN weight INTEGER;');
    const cols = this.db.prepare("SELECT name FROM pragma_table_info('metrics')").all() as { name: string }[];
    if (cols.length === 0 || cols.some((c) => c.name === 'test_mae')) return;
    this.db.exec(`BEGIN;
      ALTER TABLE metrics RENAME TO metrics_v1;
      CREATE TABLE metrics (job_id TEXT NOT NULL, version INTEGER NOT NULL, test_loss REAL NOT NULL, test_accuracy REAL, at INTEGER NOT NULL, ms REAL NOT NULL, test_mae REAL, test_rmse REAL);
      INSERT INTO metrics (job_id, version, test_loss, test_accuracy, at, ms) SELECT job_id, version, test_loss, test_accuracy, at, ms FROM metrics_v1;
      DROP TABLE metrics_v1;
      DROP INDEX IF EXISTS metrics_by_job;
      COMMIT;`);
  }

  appendMetric(m: StoredMetric): void {
    this.begin();
    this.q.appendMetric.run(m);
  }
  metrics(jobId: string): StoredMetric[] {
    return (this.q.metrics.all(jobId) as { job_id: string; version: number; test_loss: number; test_accuracy: number | null; test_mae: number | null; test_rmse: number | null; at: number; ms: number }[]).map((r) => ({
      jobId: r.job_id, version: r.version, testLoss: r.test_loss, testAccuracy: r.test_accuracy, testMae: r.test_mae, testRmse: r.test_rmse, at: r.at, ms: r.ms,
    }));
  }

  putWorker(w: StoredWorker): void {
    this.begin();
    this.q.putWorker.run({ ...w, capabilities: JSON.stringify(w.capabilities) });
  }
  getWorker(workerId: string): StoredWorker | null {
    const r = this.q.getWorker.get(workerId) as WorkerRow | undefined;
    return r ? fromWorkerRow(r) : null;
  }
  listWorkers(): StoredWorker[] {
    return (this.q.listWorkers.all() as WorkerRow[]).map(fromWorkerRow);
  }
  deleteWorkers(workerIds: readonly string[]): number {
    if (workerIds.length === 0) return 0;
    this.begin();
    let n = 0;
    for (const id of workerIds) n += this.q.deleteWorker.run(id).changes;
    return n;
  }

  putTrust(records: readonly StoredTrust[]): void {
    if (records.length === 0) return;
    this.begin();
    for (const r of records) this.q.putTrust.run(r);
  }
  listTrust(): StoredTrust[] {
    return (this.q.listTrust.all() as TrustRow[]).map((r) => ({
      workerId: r.worker_id, validated: r.validated, totalValidated: r.total_validated, faults: r.faults, creditSamples: r.credit_samples, lastFault: r.last_fault, quarantined: r.quarantined, updatedAt: r.updated_at,
    }));
  }

  /**
   * Opens the turn's transaction at its first write; it commits on the next turn. `bytes`: a blob
   * this write adds (each write also counts a page for its row and index entries).
   */
  private begin(bytes = 0): void {
    this.batchBytes += bytes + 4096;
    if (this.batch) return;
    this.db.exec('BEGIN');
    let resolve!: () => void;
    let reject!: (e: Error) => void;
    const done = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
    done.catch(() => {});
    this.batch = { done, resolve, reject };
    setImmediate(() => this.commit());
  }

  private commit(): void {
    const b = this.batch;
    if (!b) return;
    this.batch = null;
    try {
      this.db.exec('COMMIT');
      this.commits++;
      b.resolve();
      this.walCheckpoints?.committed(this.batchBytes, () => this.db.pragma('wal_checkpoint(PASSIVE)'));
    } catch (err) {
      b.reject(err as Error);
    }
    this.batchBytes = 0;
  }

  durable(): Promise<void> {
    return this.batch?.done ?? Promise.resolve();
  }

  close(): void {
    this.commit();
    this.walCheckpoints?.close();
    this.db.close();
  }
}

function fromWorkerRow(r: WorkerRow): StoredWorker {
  return {
    workerId: r.worker_id, firstSeenAt: r.first_seen_at, lastSeenAt: r.last_seen_at, capabilities: JSON.parse(r.capabilities),
    leasesDone: r.leases_done, accepted: r.accepted, refused: r.refused, msPerSample: r.ms_per_sample,
  };
}
