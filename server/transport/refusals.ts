// Which workers said they cannot train which job (job:refuse: a missing kernel, a failed probe,
// non-finite gradients on their device). The transport consults it before granting a lease, so a
// refused job is never leased to that worker again. Owns only that set, bounded in size.

import type { WorkerId } from '../leases/lease-manager.ts';

/** Oldest refusals are forgotten past this many (worker ids persist across reconnections). */
export const MAX_REFUSALS = 10_000;

export class RefusalBook {
  /** `${workerId}\n${jobId}` -> reason, in insertion order (the oldest is dropped first). */
  private readonly entries = new Map<string, string>();

  constructor(private readonly max = MAX_REFUSALS) {}

  private static key(workerId: WorkerId, jobId: string): string {
    return `${workerId}\n${jobId}`;
  }

  record(workerId: WorkerId, jobId: string, reason: string): void {
    const key = RefusalBook.key(workerId, jobId);
    this.entries.delete(key);
    this.entries.set(key, reason);
    while (this.entries.size > this.max) this.entries.delete(this.entries.keys().next().value!);
  }

  /** The reason the worker gave, or undefined when it never refused this job. */
  reason(workerId: WorkerId, jobId: string): string | undefined {
    return this.entries.get(RefusalBook.key(workerId, jobId));
  }

  /** Jobs this worker refused (for /api/workers). */
  jobsRefusedBy(workerId: WorkerId): string[] {
    const prefix = `${workerId}\n`;
    return [...this.entries.keys()].filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length));
  }

  get size(): number {
    return this.entries.size;
  }
}
