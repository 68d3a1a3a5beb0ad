// The job page's charts (uPlot): test accuracy + loss by version or wall time, workers' training
// loss, throughput, updates applied vs refused per second by reason, staleness distribution.
// Owns the chart instances; data comes from the page's job state on each render.

import { COLORS, bars, destroyChart, makeChart, type uPlot } from '../common/charts.ts';
import type { EvalPoint, LossPoint, TelemetryPoint } from '../../shared/protocol/admin.ts';

export interface ChartData {
  readonly evals: readonly EvalPoint[];
  readonly loss: readonly LossPoint[];
  readonly telemetry: readonly TelemetryPoint[];
  readonly staleness: readonly number[];
}

const REASON_NAMES: Record<string, string> = {
  STALE_GRADIENT: 'stale',
  FUTURE_VERSION: 'future version',
  GRADIENT_SPEC_MISMATCH: 'invalid (shape)',
  GRADIENT_NON_FINITE: 'invalid (NaN/Inf)',
  GRADIENT_TOO_LARGE: 'invalid (norm)',
  BAD_REQUEST: 'bad request',
  UNKNOWN_LEASE: 'unknown lease',
  LEASE_NOT_YOURS: 'not its lease',
  SHARD_ALREADY_DONE: 'shard done',
  JOB_FINISHED: 'job over',
  JOB_FINALIZING: 'finalizing',
};
export const reasonName = (code: string): string => REASON_NAMES[code] ?? code.toLowerCase();

/** Exponential moving average, so the noisy per-lease loss shows a trend. */
function ema(values: readonly number[], alpha = 0.05): number[] {
  const out: number[] = [];
  let m = values[0] ?? 0;
  for (const v of values) out.push((m = m + alpha * (v - m)));
  return out;
}

/**
 * Instead of a chart without data (whose axes would show meaningless dates and ticks), a line
 * saying what will appear and when. Returns true when it took the chart's place.
 */
function emptyState(el: HTMLElement, chart: uPlot | null, points: number, message: string): boolean {
  if (points >= 2) {
    el.querySelector(':scope > p.empty')?.remove();
    return false;
  }
  destroyChart(chart);
  const p = el.querySelector(':scope > p.empty') ?? document.createElement('p');
  p.className = 'empty muted';
  if (p.textContent !== message) p.textContent = message;
  if (!p.parentElement) el.replaceChildren(p);
  return true;
}

export class JobCharts {
  private acc: uPlot | null = null;
  private accX: 'version' | 'time' = 'version';
  private train: uPlot | null = null;
  private tput: uPlot | null = null;
  private upd: uPlot | null = null;
  private updReasons: string[] = [];
  private stale: uPlot | null = null;

  constructor(private readonly el: { acc: HTMLElement; train: HTMLElement; tput: HTMLElement; upd: HTMLElement; stale: HTMLElement }) {}

  setAccuracyAxis(x: 'version' | 'time'): void {
    if (x === this.accX) return;
    this.accX = x;
    destroyChart(this.acc);
    this.acc = null;
  }

  /** Drops every chart (another job opened); the next update builds them afresh. */
  reset(): void {
    for (const c of [this.acc, this.train, this.tput, this.upd, this.stale]) destroyChart(c);
    this.acc = this.train = this.tput = this.upd = this.stale = null;
    this.updReasons = [];
  }

  update(d: ChartData, what: { evals: boolean; loss: boolean; telemetry: boolean; staleness: boolean }): void {
    if (what.evals || !this.acc) this.drawAccuracy(d.evals);
    if (what.loss || !this.train) this.drawTrain(d.loss);
    if (what.telemetry || !this.tput || !this.upd) {
      this.drawThroughput(d.telemetry);
      this.drawUpdates(d.telemetry);
    }
    if (what.staleness || !this.stale) this.drawStaleness(d.staleness);
  }

  private drawAccuracy(evals: readonly EvalPoint[]): void {
    if (emptyState(this.el.acc, this.acc, evals.length, evals.length === 1 ? `One evaluation so far: ${evals[0]!.testAccuracy === null ? `test loss ${evals[0]!.testLoss.toPrecision(4)}` : `${(evals[0]!.testAccuracy * 100).toFixed(2)}% test accuracy`} at v${evals[0]!.version}. The curve starts at the second.` : 'No evaluation yet: the model is evaluated on the test set as workers train (every few dozen versions and at each epoch end).')) {
      this.acc = null;
      return;
    }
    const x = this.accX === 'version' ? evals.map((e) => e.version) : evals.map((e) => e.at / 1000);
    const data: uPlot.AlignedData = [x, evals.map((e) => (e.testAccuracy === null ? null : e.testAccuracy * 100)), evals.map((e) => e.testLoss)];
    if (this.acc) return this.acc.setData(data);
    this.acc = makeChart(
      this.el.acc,
      {
        xTime: this.accX === 'time',
        xLabel: this.accX === 'version' ? 'version' : 'time',
        height: 220,
        scales: { loss: { auto: true } },
        series: [
          { label: 'test accuracy %', stroke: COLORS.accuracy, width: 2, points: { show: evals.length < 60 }, value: (_u, v) => (v == null ? '–' : `${v.toFixed(2)}%`) },
          { label: 'test loss', stroke: COLORS.loss, width: 2, scale: 'loss', points: { show: evals.length < 60 }, value: (_u, v) => (v == null ? '–' : v.toFixed(4)) },
        ],
        axes: [{ values: (_u, t) => t.map((v) => `${v}%`), size: 60 }, { scale: 'loss', side: 1, grid: { show: false }, size: 56 }],
      },
      data,
    );
  }

  private drawTrain(loss: readonly LossPoint[]): void {
    if (emptyState(this.el.train, this.train, loss.length, 'No training loss yet: workers report it with each gradient.')) {
      this.train = null;
      return;
    }
    const values = loss.map((p) => p.loss);
    const data: uPlot.AlignedData = [loss.map((p) => p.version), values, ema(values)];
    if (this.train) return this.train.setData(data);
    this.train = makeChart(this.el.train, {
      xTime: false,
      xLabel: 'version',
      series: [
        { label: 'per lease', stroke: 'rgba(127,179,255,0.45)', width: 1, points: { show: false }, value: (_u, v) => (v == null ? '–' : v.toFixed(3)) },
        { label: 'moving average', stroke: COLORS.trainAvg, width: 2, points: { show: false }, value: (_u, v) => (v == null ? '–' : v.toFixed(3)) },
      ],
    }, data);
  }

  private drawThroughput(t: readonly TelemetryPoint[]): void {
    const busy = t.filter((p) => p.workers > 0 || p.samplesPerSec > 0).length;
    if (emptyState(this.el.tput, this.tput, busy, 'No throughput yet: it is drawn while workers train.')) {
      this.tput = null;
      return;
    }
    const data: uPlot.AlignedData = [t.map((p) => p.at / 1000), t.map((p) => Math.round(p.samplesPerSec)), t.map((p) => p.workers)];
    if (this.tput) return this.tput.setData(data);
    this.tput = makeChart(this.el.tput, {
      xTime: true,
      xLabel: 'time',
      scales: { workers: { auto: true, range: (_u, _min, max) => [0, Math.max(2, max + 1)] } },
      series: [
        { label: 'samples/s', stroke: COLORS.throughput, width: 2, fill: 'rgba(91,157,255,0.12)', points: { show: false } },
        { label: 'workers', stroke: COLORS.workers, width: 1.5, scale: 'workers', points: { show: false } },
      ],
      axes: [{}, { scale: 'workers', side: 1, grid: { show: false } }],
    }, data);
  }

  /** Applied and refused (by reason) per second, from consecutive cumulative telemetry points. */
  private drawUpdates(t: readonly TelemetryPoint[]): void {
    const moved = t.length > 1 && (t.at(-1)!.applied !== t[0]!.applied || Object.values(t.at(-1)!.refused).some((n) => n > 0));
    if (emptyState(this.el.upd, this.upd, moved ? t.length : 0, 'No update yet: applied and refused gradients per second appear once workers push.')) {
      this.upd = null;
      return;
    }
    const reasons = [...new Set(t.flatMap((p) => Object.keys(p.refused)))].sort();
    if (this.upd && reasons.join() !== this.updReasons.join()) {
      destroyChart(this.upd);
      this.upd = null;
    }
    this.updReasons = reasons;
    const xs: number[] = [];
    const applied: number[] = [];
    const refused: number[][] = reasons.map(() => []);
    for (let i = 1; i < t.length; i++) {
      const a = t[i - 1]!;
      const b = t[i]!;
      const dt = Math.max(0.001, (b.at - a.at) / 1000);
      xs.push(b.at / 1000);
      applied.push(Math.max(0, (b.applied - a.applied) / dt));
      reasons.forEach((r, k) => refused[k]!.push(Math.max(0, ((b.refused[r] ?? 0) - (a.refused[r] ?? 0)) / dt)));
    }
    const data: uPlot.AlignedData = [xs, applied, ...refused];
    if (this.upd) return this.upd.setData(data);
    const fmt = (_u: uPlot, v: number | null): string => (v == null ? '–' : v.toFixed(1));
    this.upd = makeChart(this.el.upd, {
      xTime: true,
      xLabel: 'time',
      series: [
        { label: 'applied', stroke: COLORS.applied, width: 2, points: { show: false }, value: fmt },
        ...reasons.map((r, k) => ({ label: `refused: ${reasonName(r)}`, stroke: COLORS.refused[k % COLORS.refused.length]!, width: 2, points: { show: false }, value: fmt })),
      ],
    }, data);
  }

  private drawStaleness(h: readonly number[]): void {
    const applied = h.reduce((a, b) => a + b, 0);
    if (emptyState(this.el.stale, this.stale, applied > 0 ? 2 : 0, 'No update applied yet: the staleness of each applied gradient is counted here.')) {
      this.stale = null;
      return;
    }
    const data: uPlot.AlignedData = [h.map((_, i) => i), [...h]];
    if (this.stale) return this.stale.setData(data);
    const last = h.length - 1;
    this.stale = makeChart(this.el.stale, {
      xTime: false,
      xLabel: 'staleness τ (versions)',
      scales: { x: { time: false, range: (_u, min, max) => [min - 0.6, max + 0.6] } },
      series: [{ label: 'applied updates', stroke: COLORS.bars, fill: 'rgba(91,157,255,0.55)', paths: bars, points: { show: false } }],
      xAxis: { values: (_u, t) => t.map((v) => (v === last ? `${v}+` : Number.isInteger(v) ? String(v) : '')) },
    }, data);
  }
}
