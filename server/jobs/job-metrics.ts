// A job's figures: counters (accepted, refused by code, samples, bytes, staleness histogram), the
// evaluation history, the workers' training loss and the recent samples for samples/s. Owns them
// and their checkpointed form; the runtime reports into it, the API reads from it.

import type { Clock } from '../../shared/clock.ts';
import type { EvalResult } from '../evaluation/evaluator.ts';

export interface Counters {
  applied: number;
  refused: Record<string, number>;
  samplesApplied: number;
  bytesDown: number;
  bytesUp: number;
  /** Histogram of accepted staleness: index = tau (last bucket collects the rest). */
  staleness: number[];
  /**
   * Moving average of accepted staleness (weight 1/16 per gradient; absent in checkpoints written
   * before it existed: 0). Checkpointed and replayed with the log, so a restart resumes it where
   * the log left it; the look-ahead of lease weights (JobRuntime) reads it.
   */
  stalenessAverage?: number;
}

export interface MetricsSnapshot {
  metrics: EvalResult[];
  trainLoss: { version: number; loss: number }[];
  counters: Counters;
}

const STALENESS_BUCKETS = 33;
/** Gradients the staleness average spans (an exponential average, weight 1/16 each). */
const STALENESS_AVERAGE_SPAN = 16;
const MAX_TRAIN_LOSS_KEPT = 5_000;
const RECENT_MS = 10_000;

export class JobMetrics {
  private evaluations: EvalResult[];
  private trainLoss: { version: number; loss: number }[];
  readonly counters: Counters;
  private recent: { at: number; samples: number }[] = [];

  constructor(
    private readonly clock: Clock,
    snap: MetricsSnapshot | null,
  ) {
    this.evaluations = snap?.metrics ?? [];
    this.trainLoss = snap?.trainLoss ?? [];
    this.counters = snap?.counters ?? { applied: 0, refused: {}, samplesApplied: 0, bytesDown: 0, bytesUp: 0, staleness: new Array<number>(STALENESS_BUCKETS).fill(0) };
  }

  /** One accepted gradient (`bytesUp` null on replay: the bytes were counted when it arrived). */
  accepted(samples: number, tau: number, bytesUp: number | null, loss: number | null, step: number): void {
    const c = this.counters;
    c.applied++;
    c.samplesApplied += samples;
    if (bytesUp !== null) c.bytesUp += bytesUp;
    c.staleness[Math.min(STALENESS_BUCKETS - 1, tau)]!++;
    c.stalenessAverage = (c.stalenessAverage ?? 0) + (tau - (c.stalenessAverage ?? 0)) / STALENESS_AVERAGE_SPAN;
    if (loss !== null && Number.isFinite(loss)) {
      this.trainLoss.push({ version: step, loss });
      if (this.trainLoss.length > MAX_TRAIN_LOSS_KEPT) this.trainLoss.splice(0, this.trainLoss.length - MAX_TRAIN_LOSS_KEPT);
    }
  }

  refused(code: string): void {
    this.counters.refused[code] = (this.counters.refused[code] ?? 0) + 1;
  }

  downloaded(bytes: number): void {
    this.counters.bytesDown += bytes;
  }

  evaluated(r: EvalResult): void {
    this.evaluations.push(r);
  }

  /** The durable metric rows replace the checkpoint's copy when they are as long (replay). */
  adoptStored(stored: EvalResult[]): void {
    if (stored.length >= this.evaluations.length) this.evaluations = stored;
  }

  get lastEvaluation(): EvalResult | undefined {
    return this.evaluations.at(-1);
  }

  noteSamples(n: number): void {
    const now = this.clock.now();
    this.recent.push({ at: now, samples: n });
    while (this.recent.length > 0 && this.recent[0]!.at < now - RECENT_MS) this.recent.shift();
  }

  samplesPerSec(): number {
    const now = this.clock.now();
    const recent = this.recent.filter((r) => r.at >= now - RECENT_MS);
    if (recent.length < 2) return 0;
    const span = Math.max(1000, now - recent[0]!.at);
    return (recent.reduce((s, r) => s + r.samples, 0) * 1000) / span;
  }

  history(): { evaluations: readonly EvalResult[]; trainLoss: readonly { version: number; loss: number }[] } {
    return { evaluations: this.evaluations, trainLoss: this.trainLoss };
  }

  snapshot(): MetricsSnapshot {
    return { metrics: [...this.evaluations], trainLoss: [...this.trainLoss], counters: structuredClone(this.counters) };
  }
}
