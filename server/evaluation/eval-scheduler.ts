// When a job evaluates: every `evalEveryVersions` versions, unless periodic evaluations would take
// more than 1/EVAL_SHARE_INV of the coordinator's time; epoch ends and the stop condition always.
// Owns the last evaluated version and how long the last evaluation took. Pure decisions over a clock.

import type { Clock } from '../../shared/clock.ts';

const EVAL_SHARE_INV = 5;

export class EvalScheduler {
  private lastVersion: number;
  private lastEndedAt = 0;
  private lastMs = 0;

  constructor(
    private readonly clock: Clock,
    private readonly everyVersions: () => number,
    lastEvaluatedVersion: number,
  ) {
    this.lastVersion = lastEvaluatedVersion;
  }

  get lastEvaluated(): number {
    return this.lastVersion;
  }

  /** A periodic evaluation is due at `version` (a CNN's test pass costs seconds: it waits its share). */
  periodicDue(version: number): boolean {
    const budget = this.clock.now() - this.lastEndedAt >= (EVAL_SHARE_INV - 1) * this.lastMs;
    return version - this.lastVersion >= this.everyVersions() && budget;
  }

  /** Due after an evaluation ended: periodic, or the last epoch is done and `version` was not evaluated. */
  dueAfter(version: number, exhausted: boolean): boolean {
    return this.periodicDue(version) || (exhausted && this.lastVersion !== version);
  }

  started(version: number): void {
    this.lastVersion = version;
  }

  finished(ms: number): void {
    this.lastEndedAt = this.clock.now();
    this.lastMs = ms;
  }

  /** Restored metric history (replay) names the last evaluated version. */
  reset(lastEvaluatedVersion: number): void {
    this.lastVersion = lastEvaluatedVersion;
  }
}
