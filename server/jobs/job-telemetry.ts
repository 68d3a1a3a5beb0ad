// Time series the dashboard charts against wall time: per job, about once a second, throughput,
// workers, version and cumulative applied/refused counts. Owns only these in-memory series (a
// restart starts them afresh; evaluations, which are checkpointed, carry the long history).

import type { Clock } from '../../shared/clock.ts';
import type { TelemetryPoint } from '../../shared/protocol/admin.ts';

/** What a sample reads from a job: `JobRuntime.summary()` satisfies it. */
export interface Sampled {
  readonly id: string;
  readonly status: string;
  readonly version: number;
  readonly samplesPerSec: number;
  readonly workers: number;
  readonly updates: { readonly applied: number; readonly refused: Readonly<Record<string, number>> };
}

/** Points kept per job; past it the older half is thinned to every other point. */
const MAX_POINTS = 3600;

export class TelemetryBook {
  private readonly series = new Map<string, TelemetryPoint[]>();
  private readonly listeners = new Set<(jobId: string) => void>();

  constructor(private readonly clock: Clock) {}

  /**
   * Appends one point per job. A job that is not running and whose figures did not move is
   * skipped, so a paused or finished job's chart does not grow forever with flat points.
   */
  sample(jobs: readonly Sampled[]): void {
    const at = this.clock.now();
    for (const j of jobs) {
      let s = this.series.get(j.id);
      if (!s) this.series.set(j.id, (s = []));
      const last = s.at(-1);
      const idle = j.status !== 'running' && last && last.version === j.version && last.workers === j.workers && last.samplesPerSec === 0;
      if (idle) continue;
      s.push({ at, version: j.version, samplesPerSec: j.samplesPerSec, workers: j.workers, applied: j.updates.applied, refused: { ...j.updates.refused } });
      if (s.length > MAX_POINTS) this.series.set(j.id, thin(s));
      for (const l of this.listeners) l(j.id);
    }
  }

  points(jobId: string): readonly TelemetryPoint[] {
    return this.series.get(jobId) ?? [];
  }

  /** Points newer than `afterAt` (scans from the end: O(new points)). */
  since(jobId: string, afterAt: number): TelemetryPoint[] {
    const s = this.series.get(jobId) ?? [];
    let i = s.length;
    while (i > 0 && s[i - 1]!.at > afterAt) i--;
    return s.slice(i);
  }

  onSample(cb: (jobId: string) => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }
}

function thin(s: TelemetryPoint[]): TelemetryPoint[] {
  const half = Math.floor(s.length / 2);
  return [...s.slice(0, half).filter((_, i) => i % 2 === 0), ...s.slice(half)];
}
