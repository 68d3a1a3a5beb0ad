// Job registry: the jobs this coordinator knows, by id. Creates jobs (persisting job.json) and
// reopens them from disk at start-up. It only registers: each job's work is its JobRuntime's.

import { mkdir, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { JobConfigSchema, type JobConfig } from './job-config.ts';
import { JobRuntime, type JobRuntimeDeps } from './job-runtime.ts';
import { CheckpointStore } from '../storage/checkpoint-store.ts';
import { writeFileAtomic } from '../storage/atomic-file.ts';

export type RegistryDeps = Omit<JobRuntimeDeps, 'store'> & { readonly dataDir: string; readonly keepCheckpoints: number };

export class JobRegistry {
  private readonly jobs = new Map<string, JobRuntime>();
  constructor(private readonly deps: RegistryDeps) {}

  private jobDir(id: string): string {
    return path.join(this.deps.dataDir, 'jobs', id);
  }

  storeFor(id: string): CheckpointStore {
    return new CheckpointStore(path.join(this.jobDir(id), 'checkpoints'), this.deps.keepCheckpoints, (m) => this.deps.log.warn(m));
  }

  /** Reopens every job found under dataDir/jobs. */
  async loadAll(): Promise<void> {
    let ids: string[] = [];
    try {
      ids = await readdir(path.join(this.deps.dataDir, 'jobs'));
    } catch {
      return;
    }
    for (const id of ids.sort()) {
      try {
        const raw = JSON.parse(await readFile(path.join(this.jobDir(id), 'job.json'), 'utf8')) as { config: unknown };
        const config = JobConfigSchema.parse(raw.config);
        this.jobs.set(id, await JobRuntime.open(id, config, { ...this.deps, store: this.storeFor(id) }));
      } catch (err) {
        this.deps.log.warn(`job ${id}: cannot be reopened: ${(err as Error).message}`);
      }
    }
  }

  async create(id: string, config: JobConfig): Promise<JobRuntime> {
    if (this.jobs.has(id)) throw new Error(`job ${id} already exists`);
    const valid = JobConfigSchema.parse(config);
    await mkdir(this.jobDir(id), { recursive: true });
    await writeFileAtomic(path.join(this.jobDir(id), 'job.json'), JSON.stringify({ id, config: valid }));
    const rt = await JobRuntime.create(id, valid, { ...this.deps, store: this.storeFor(id) });
    this.jobs.set(id, rt);
    return rt;
  }

  get(id: string): JobRuntime | undefined {
    return this.jobs.get(id);
  }

  all(): JobRuntime[] {
    return [...this.jobs.values()];
  }

  /** The job a worker gets when it names none: the oldest running one. */
  defaultJob(): JobRuntime | undefined {
    return this.all().find((j) => j.status === 'running') ?? this.all().find((j) => j.status === 'paused') ?? this.all()[0];
  }
}
