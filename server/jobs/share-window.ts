// What each job got over the last minute, for the scheduler: samples applied, worker-time spent on
// it, and which job each worker is placed on now. Fed by the transport (placements on job:get /
// reassignment, applied pushes); owns only these bounded records, read through loads().

import type { Clock } from '../../shared/clock.ts';

export const SHARE_WINDOW_MS = 60_000;

export interface WindowLoad {
  /** Samples applied within the window. */
  samples: number;
  /**
   * Worker-time spent on the job within the window, ms, counted from each worker's first applied
   * push there (a move's model build and weights download would make the job look slow).
   */
  workerMs: number;
  /** Workers placed on it now. */
  workers: number;
}

interface Stint {
  readonly jobId: string;
  readonly from: number;
  readonly to: number;
}

export class ShareWindow {
  /** Applied pushes, oldest first, from index `head` on (compacted now and then). */
  private applied: { at: number; jobId: string; samples: number }[] = [];
  private head = 0;
  /** Per job, the samples of applied[head..]: loads() costs O(jobs + stints + workers), not O(pushes). */
  private readonly sums = new Map<string, number>();
  /** Finished stints (a worker's time on one job), oldest end first. */
  private readonly stints: Stint[] = [];
  /** Where each worker is, since when, and since when it produces there (first applied push). */
  private readonly placed = new Map<string, { jobId: string; since: number; producingSince: number | null }>();

  constructor(
    private readonly clock: Clock,
    readonly windowMs = SHARE_WINDOW_MS,
  ) {}

  /** The worker works on `jobId` from now on (null: on none, e.g. disconnected). */
  place(workerId: string, jobId: string | null): void {
    const now = this.clock.now();
    const prev = this.placed.get(workerId);
    if (prev?.jobId === jobId) return;
    if (prev) {
      if (prev.producingSince !== null) this.stints.push({ jobId: prev.jobId, from: prev.producingSince, to: now });
      this.placed.delete(workerId);
    }
    if (jobId !== null) this.placed.set(workerId, { jobId, since: now, producingSince: null });
    this.trim(now);
  }

  /** A push by `workerId` to `jobId` was applied. */
  noteApplied(workerId: string, jobId: string, samples: number): void {
    const now = this.clock.now();
    const p = this.placed.get(workerId);
    if (p?.jobId === jobId && p.producingSince === null) p.producingSince = now;
    this.applied.push({ at: now, jobId, samples });
    this.sums.set(jobId, (this.sums.get(jobId) ?? 0) + samples);
    this.trim(now);
  }

  jobOf(workerId: string): string | null {
    return this.placed.get(workerId)?.jobId ?? null;
  }

  /** How long the worker has been on its current job, ms (0 when on none). */
  dwellMs(workerId: string): number {
    const p = this.placed.get(workerId);
    return p ? this.clock.now() - p.since : 0;
  }

  /** Per job id, over the window (jobs with no record are absent: read as zeros). */
  loads(): Map<string, WindowLoad> {
    const now = this.clock.now();
    this.trim(now);
    const start = now - this.windowMs;
    const out = new Map<string, WindowLoad>();
    const of = (jobId: string): WindowLoad => {
      let l = out.get(jobId);
      if (!l) out.set(jobId, (l = { samples: 0, workerMs: 0, workers: 0 }));
      return l;
    };
    for (const [jobId, samples] of this.sums) of(jobId).samples += samples;
    for (const s of this.stints) of(s.jobId).workerMs += s.to - Math.max(s.from, start);
    for (const p of this.placed.values()) {
      const l = of(p.jobId);
      if (p.producingSince !== null) l.workerMs += now - Math.max(p.producingSince, start);
      l.workers++;
    }
    return out;
  }

  private trim(now: number): void {
    const start = now - this.windowMs;
    while (this.head < this.applied.length && this.applied[this.head]!.at < start) {
      const a = this.applied[this.head++]!;
      const left = (this.sums.get(a.jobId) ?? 0) - a.samples;
      if (left > 0) this.sums.set(a.jobId, left);
      else this.sums.delete(a.jobId);
    }
    if (this.head > 1024 && this.head * 2 > this.applied.length) {
      this.applied = this.applied.slice(this.head);
      this.head = 0;
    }
    // Stints are appended in end order, so the expired ones are a prefix.
    let k = 0;
    while (k < this.stints.length && this.stints[k]!.to <= start) k++;
    if (k > 0) this.stints.splice(0, k);
  }
}
