// Coalescing throttle for the dashboard feed: any number of `mark()`s become at most one `fire`
// per `minIntervalMs`, fired as soon as the interval allows (not on a fixed tick), so a quiet job
// costs nothing and a busy one costs a bounded rate. Owns one pending timer; time from a Clock.

import type { Clock } from '../../shared/clock.ts';

export class Throttle {
  private lastFiredAt = -Infinity;
  /** When the oldest change not yet fired happened; null when nothing is pending. */
  private pendingSince: number | null = null;
  private timer: AbortController | null = null;

  constructor(
    private readonly clock: Clock,
    private readonly minIntervalMs: number,
    /** Receives when the first change folded into this firing happened (epoch ms). */
    private readonly fire: (eventAt: number) => void,
  ) {}

  get pending(): boolean {
    return this.pendingSince !== null;
  }

  mark(at = this.clock.now()): void {
    if (this.pendingSince !== null) return;
    this.pendingSince = at;
    const wait = Math.max(0, this.lastFiredAt + this.minIntervalMs - this.clock.now());
    const timer = new AbortController();
    this.timer = timer;
    void this.clock.sleep(wait, timer.signal).then(() => {
      if (timer.signal.aborted) return;
      this.timer = null;
      const since = this.pendingSince!;
      this.pendingSince = null;
      this.lastFiredAt = this.clock.now();
      this.fire(since);
    });
  }

  cancel(): void {
    this.timer?.abort();
    this.timer = null;
    this.pendingSince = null;
  }
}
