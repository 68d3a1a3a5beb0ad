// Job registry: the jobs this coordinator knows, by id. Creates jobs (recording them in the
// StateStore) and reopens them at start-up. It only registers: each job's work is its JobRuntime's.

import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { JobConfigSchema, type JobConfig } from './job-config.ts';
import { JobRuntime, type JobRuntimeDeps } from './job-runtime.ts';
import { CheckpointStore, type Checkpoints } from '../storage/checkpoint-store.ts';
import { loadMnist, type Dataset } from '../data/dataset.ts';
import { memoryJobData, type JobData } from '../data/job-data.ts';
import { ShardStore } from '../data/store/shard-store.ts';
import type { SharedJobData } from '../storage/redis-job-data.ts';

export type RegistryDeps = Omit<JobRuntimeDeps, 'store' | 'data' | 'initialWeights'> & {
  /** The built-in MNIST for demo jobs (tests pass a slice); loaded on first use otherwise. */
  readonly mnist?: Dataset | undefined;
  readonly dataDir: string;
  readonly keepCheckpoints: number;
  /** Fault injection only: pause inside every checkpoint write. */
  readonly checkpointPauseMs?: number | undefined;
  /** Where checkpoints live when not in files under dataDir (FLOCK_STORE=redis: in Redis). */
  readonly checkpoints?: ((jobId: string, kind: 'rotation' | 'best', keep: number) => Checkpoints) | undefined;
  /** Evaluate in a worker thread (the CLI); absent: on the event loop, in chunks (tests). */
  readonly evaluationThread?: boolean | undefined;
  /**
   * Where a job's own data lives besides this process's folder (FLOCK_STORE=redis: in Redis, so any
   * process can open the job; the folder is then a cache materialised from it).
   */
  readonly sharedData?: SharedJobData | undefined;
};

export class JobRegistry {
  private readonly jobs = new Map<string, JobRuntime>();
  private readonly added = new Set<(job: JobRuntime) => void>();
  constructor(private readonly deps: RegistryDeps) {}

  /** Called for each job created after start-up (the transport subscribes to its updates). */
  onAdded(cb: (job: JobRuntime) => void): () => void {
    this.added.add(cb);
    return () => this.added.delete(cb);
  }

  private jobDir(id: string): string {
    return path.join(this.deps.dataDir, 'jobs', id);
  }

  private readonly stores = new Map<string, Checkpoints>();

  /** The job's checkpoint store (one per job, so its verification cache is shared). */
  storeFor(id: string): Checkpoints {
    let store = this.stores.get(id);
    if (!store) {
      store = this.deps.checkpoints?.(id, 'rotation', this.deps.keepCheckpoints) ?? new CheckpointStore(path.join(this.jobDir(id), 'checkpoints'), this.deps.keepCheckpoints, (m) => this.deps.log.warn(m), this.deps.checkpointPauseMs ?? 0);
      this.stores.set(id, store);
    }
    return store;
  }

  private mnist: Promise<Dataset> | null = null;

  /** The examples of a job: the shared MNIST for demos, the job's own shard store otherwise. */
  private async dataFor(id: string, config: JobConfig): Promise<JobData> {
    if (config.dataset === 'store') {
      const dir = path.join(this.jobDir(id), 'data');
      if (this.deps.sharedData && (await this.deps.sharedData.materialise(id, dir)) === 'fetched') this.deps.log.info(`job ${id}: its data was copied from the shared store into ${dir}`);
      return ShardStore.open(dir);
    }
    this.mnist ??= this.deps.mnist ? Promise.resolve(this.deps.mnist) : loadMnist();
    return memoryJobData(await this.mnist);
  }

  private readonly bestStores = new Map<string, Checkpoints>();

  /** The job's best checkpoint (one, by the job's metric), outside the keep-last-N rotation. */
  bestStoreFor(id: string): Checkpoints {
    let store = this.bestStores.get(id);
    if (!store) {
      store = this.deps.checkpoints?.(id, 'best', 1) ?? new CheckpointStore(path.join(this.jobDir(id), 'best'), 1, (m) => this.deps.log.warn(m));
      this.bestStores.set(id, store);
    }
    return store;
  }

  /**
   * Reopens every job recorded in the StateStore, each from its newest checkpoint plus the update
   * log, and announces each (onAdded) to whoever already listens: a cluster process elected again
   * after stepping down reloads its jobs while its handlers stay attached.
   */
  async loadAll(): Promise<void> {
    for (const job of this.deps.state.listJobs()) {
      if (this.jobs.has(job.id)) continue;
      let data: JobData | null = null;
      try {
        const config = JobConfigSchema.parse(job.config);
        data = await this.dataFor(job.id, config);
        const rt = await JobRuntime.open(job.id, config, { ...this.deps, data, store: this.storeFor(job.id), bestStore: this.bestStoreFor(job.id) });
        this.jobs.set(job.id, rt);
        for (const cb of this.added) cb(rt);
      } catch (err) {
        data?.close();
        this.deps.log.warn(`job ${job.id}: cannot be reopened: ${(err as Error).message}`);
      }
    }
  }

  /**
   * Forgets every job without writing anything (a cluster owner that lost its lease: its successor
   * holds the jobs now; fencing refuses whatever write of theirs is still in flight). Evaluations
   * are stopped and data files closed; the local data folders stay as caches.
   */
  unloadAll(): number {
    const jobs = [...this.jobs.values()];
    this.jobs.clear();
    this.stores.clear();
    this.bestStores.clear();
    for (const job of jobs) {
      try {
        job.dispose();
      } catch (err) {
        this.deps.log.warn(`job ${job.id}: stopping it failed: ${(err as Error).message}`);
      }
    }
    return jobs.length;
  }

  /**
   * What a user of the trained model needs to prepare raw inputs as training did: the row layout,
   * the preprocessing (column order, one-hot categories, standardisation, scales) and the labels.
   */
  async dataInfo(id: string): Promise<unknown> {
    const job = this.jobs.get(id);
    if (!job) throw new Error(`no job ${id}`);
    if (job.config.dataset === 'store') return JSON.parse(await readFile(path.join(this.jobDir(id), 'data', 'meta.json'), 'utf8'));
    const spec = job.descriptor().data;
    return {
      spec,
      source: 'mnist (built in): 28x28 grey images, pixels 0..255',
      preprocessing: { scale: [{ feature: '*', factor: spec.features.scale }] },
      labels: { classNames: Array.from({ length: 10 }, (_, i) => String(i)) },
    };
  }

  has(id: string): boolean {
    return this.jobs.has(id) || this.deps.state.listJobs().some((j) => j.id === id);
  }

  /**
   * Creates a job. A job with its own data (`dataset: 'store'`) brings the shard store already
   * written in `staged.dataDir` (moved into the job's folder) and may bring starting weights.
   * Nothing is left behind when it fails: the job's folder is removed and no record is written.
   */
  async create(id: string, config: JobConfig, staged: { dataDir?: string; initialWeights?: Float32Array } = {}): Promise<JobRuntime> {
    if (this.has(id)) throw new Error(`job ${id} already exists`);
    const valid = JobConfigSchema.parse(config);
    if ((valid.dataset === 'store') !== (staged.dataDir !== undefined)) throw new Error(`job ${id}: a '${valid.dataset}' job ${valid.dataset === 'store' ? 'needs' : 'takes no'} staged data`);
    // A folder for a job the StateStore does not know is left over (a crash before the job was
    // recorded, or a FLOCK_STORE=memory run): its checkpoints must not be served as this job's.
    await rm(this.jobDir(id), { recursive: true, force: true });
    await mkdir(this.jobDir(id), { recursive: true });
    let data: JobData | null = null;
    let shared = false;
    try {
      if (staged.dataDir) {
        const dir = path.join(this.jobDir(id), 'data');
        await rename(staged.dataDir, dir);
        // In the shared store before the job exists anywhere: whoever opens it later finds its data.
        shared = this.deps.sharedData !== undefined;
        await this.deps.sharedData?.put(id, dir);
      }
      data = await this.dataFor(id, valid);
      // Data, then checkpoint v0, then the job record: a crash in between leaves no half-made job.
      const rt = await JobRuntime.create(id, valid, { ...this.deps, data, initialWeights: staged.initialWeights, store: this.storeFor(id), bestStore: this.bestStoreFor(id) });
      this.deps.state.putJob({ id, config: valid, createdAt: this.deps.clock.now() });
      // Recorded before it is acknowledged: a takeover right after the answer still knows the job.
      await this.deps.state.durable();
      this.jobs.set(id, rt);
      for (const cb of this.added) cb(rt);
      return rt;
    } catch (err) {
      data?.close();
      this.stores.delete(id);
      this.bestStores.delete(id);
      await rm(this.jobDir(id), { recursive: true, force: true });
      if (shared) await this.deps.sharedData!.remove(id).catch((e: Error) => this.deps.log.warn(`job ${id}: its data could not be removed from the shared store: ${e.message}`));
      throw err;
    }
  }

  /**
   * Changes a running job's learning rate, staleness bound and/or scheduling weight and records the new config in
   * the StateStore, so a restart keeps them. Throws a ZodError on an invalid value (nothing changes).
   */
  updateSettings(id: string, patch: { learningRate?: number | undefined; maxStaleness?: number | undefined; weight?: number | undefined }): JobRuntime | undefined {
    const job = this.jobs.get(id);
    if (!job) return undefined;
    const next = JobConfigSchema.parse({
      ...job.config,
      optimizer: { ...job.config.optimizer, learningRate: patch.learningRate ?? job.config.optimizer.learningRate },
      staleness: { ...job.config.staleness, maxStaleness: patch.maxStaleness ?? job.config.staleness.maxStaleness },
      weight: patch.weight ?? job.config.weight,
    });
    if (patch.learningRate !== undefined) job.setLearningRate(next.optimizer.learningRate);
    if (patch.maxStaleness !== undefined) job.setMaxStaleness(next.staleness.maxStaleness);
    // Read by the scheduler on every placement: takes effect at the next lease request.
    if (patch.weight !== undefined) job.config.weight = next.weight;
    const createdAt = this.deps.state.listJobs().find((j) => j.id === id)?.createdAt ?? job.summary().createdAt;
    this.deps.state.putJob({ id, config: job.config, createdAt });
    return job;
  }

  /** Resolves once every state write so far (e.g. a settings change) is committed. */
  durable(): Promise<void> {
    return this.deps.state.durable();
  }

  get(id: string): JobRuntime | undefined {
    return this.jobs.get(id);
  }

  all(): JobRuntime[] {
    return [...this.jobs.values()];
  }

  /**
   * The oldest running job (else paused, else any): the fallback for a worker that names no job
   * when the scheduler (server/transport/job-assignment.ts) has no running job it can train.
   */
  defaultJob(): JobRuntime | undefined {
    return this.all().find((j) => j.status === 'running') ?? this.all().find((j) => j.status === 'paused') ?? this.all()[0];
  }
}
