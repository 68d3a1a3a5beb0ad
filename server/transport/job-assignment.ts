// Places workers that did not pin a job: gathers each job's load (registry + the share window),
// asks the pure scheduler, and records where each worker is. The socket handlers call it on
// job:get (no job id), on lease:request from a movable worker, and on every applied push.
// Owns the ShareWindow (placements, the last minute's samples and worker-time) and nothing else.

import type { Clock } from '../../shared/clock.ts';
import type { WorkerId } from '../leases/lease-manager.ts';
import type { JobRegistry } from '../jobs/registry.ts';
import type { JobRuntime } from '../jobs/job-runtime.ts';
import { chooseJob, DEFAULT_POLICY, type Choice, type JobLoad, type SchedulerPolicy } from '../jobs/scheduler.ts';
import { ShareWindow } from '../jobs/share-window.ts';
import type { RefusalBook } from './refusals.ts';

export class JobAssigner {
  readonly window: ShareWindow;
  private readonly policy: SchedulerPolicy;

  constructor(
    private readonly registry: JobRegistry,
    private readonly refusals: RefusalBook,
    clock: Clock,
    policy: Partial<SchedulerPolicy> = {},
  ) {
    this.policy = { ...DEFAULT_POLICY, ...policy };
    this.window = new ShareWindow(clock);
  }

  /** The worker now works on `jobId` (null: on none). Pinned workers too: they count in the shares. */
  place(workerId: WorkerId, jobId: string | null): void {
    this.window.place(workerId, jobId);
  }

  noteApplied(workerId: WorkerId, jobId: string, samples: number): void {
    this.window.noteApplied(workerId, jobId, samples);
  }

  /** job:get without a job id: the job the scheduler gives this worker, or undefined when no running job suits it. */
  pick(workerId: WorkerId): JobRuntime | undefined {
    const choice = this.choose(workerId);
    return choice ? this.registry.get(choice.jobId) : undefined;
  }

  /**
   * lease:request from a movable worker on `jobId`: the job it should move to instead, or null to
   * stay (also when no running job suits it: the job's own answer, paused or finished, stands).
   * The worker is placed on the new job at once, so that the next worker deciding sees it there.
   */
  reassignment(workerId: WorkerId, jobId: string): string | null {
    if (this.window.jobOf(workerId) === null) this.window.place(workerId, jobId);
    const choice = this.choose(workerId);
    if (!choice || choice.jobId === jobId) return null;
    this.window.place(workerId, choice.jobId);
    return choice.jobId;
  }

  private choose(workerId: WorkerId): Choice {
    const loads = this.window.loads();
    const jobs: JobLoad[] = this.registry.all().map((j) => {
      const l = loads.get(j.id);
      return { id: j.id, weight: j.config.weight ?? 1, status: j.status, samples: l?.samples ?? 0, workerMs: l?.workerMs ?? 0, workers: l?.workers ?? 0 };
    });
    return chooseJob(jobs, { current: this.window.jobOf(workerId), dwellMs: this.window.dwellMs(workerId), refused: { has: (id) => this.refusals.reason(workerId, id) !== undefined } }, this.policy);
  }
}
