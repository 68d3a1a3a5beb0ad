// uPlot in the house colours: one place builds the dashboard's and the volunteer page's charts
// (dark axes, legend, width following the container) so every chart reads the same.

import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export const COLORS = {
  accuracy: '#3ecf8e',
  loss: '#f5b942',
  throughput: '#5b9dff',
  workers: '#b18cff',
  applied: '#3ecf8e',
  refused: ['#ff6b6b', '#ff9f43', '#f368e0', '#feca57', '#c8d6e5'],
  train: '#7fb3ff',
  trainAvg: '#f5b942',
  bars: '#5b9dff',
} as const;

const axis = (o: Partial<uPlot.Axis> = {}): uPlot.Axis => ({ stroke: '#a3adc2', grid: { stroke: '#26314a', width: 1 }, ticks: { stroke: '#26314a', width: 1 }, font: '12px system-ui, sans-serif', ...o });

export interface ChartSpec {
  readonly height?: number;
  /** x is epoch seconds when true (uPlot's time axis), a plain number otherwise. */
  readonly xTime: boolean;
  readonly xLabel: string;
  readonly series: readonly (uPlot.Series & { label: string })[];
  /** Overrides for the x axis (e.g. tick labels). */
  readonly xAxis?: uPlot.Axis;
  /** The y axes, left first (a second one usually names a scale and sits on side 1). */
  readonly axes?: readonly uPlot.Axis[];
  readonly scales?: uPlot.Scales;
  readonly legend?: boolean;
}

/** Tick steps of a time axis, in seconds: never below one second. */
const TIME_INCRS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

/** Tick steps of a counting axis (versions): 1, 2, 5, 10, 20, 50... */
const WHOLE_INCRS = Array.from({ length: 10 }, (_, e) => [1, 2, 5].map((m) => m * 10 ** e)).flat();

/** Tick labels of a time axis: HH:MM, with seconds only when the ticks are less than a minute apart. */
function timeTicks(_u: uPlot, ticks: number[]): string[] {
  const step = ticks.length > 1 ? ticks[1]! - ticks[0]! : 60;
  return ticks.map((t) => {
    const d = new Date(Math.round(t) * 1000);
    const hm = `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
    return step < 60 ? `${hm}:${String(d.getSeconds()).padStart(2, '0')}` : hm;
  });
}

const observers = new WeakMap<uPlot, ResizeObserver>();

/** A uPlot chart in `el` that resizes with it. Returns the chart; `destroyChart` undoes both. */
export function makeChart(el: HTMLElement, spec: ChartSpec, data: uPlot.AlignedData): uPlot {
  const width = Math.max(260, el.clientWidth || 260);
  const opts: uPlot.Options = {
    width,
    height: spec.height ?? 200,
    scales: { x: { time: spec.xTime }, ...(spec.scales ?? {}) },
    // Time axes: wide tick spacing so "12:03:10"-style labels never overlap; whole seconds only.
    // Plain x axes count versions: whole-number ticks. Left axes wide enough for "15,000".
    axes: [axis({ ...(spec.xTime ? { space: 90, incrs: TIME_INCRS, values: timeTicks } : { incrs: WHOLE_INCRS }), ...spec.xAxis }), ...(spec.axes ?? [{}]).map((a) => axis({ size: 64, ...a }))],
    series: [{ label: spec.xLabel, value: spec.xTime ? '{HH}:{mm}:{ss}' : (_u, v) => (v == null ? '–' : String(v)) }, ...spec.series],
    legend: { show: spec.legend ?? true, live: true },
    cursor: { drag: { x: true, y: false } },
  };
  const chart = new uPlot(opts, data, el);
  const ro = new ResizeObserver(() => {
    const w = Math.max(260, el.clientWidth);
    if (Math.abs(w - chart.width) > 2) chart.setSize({ width: w, height: chart.height });
  });
  ro.observe(el);
  observers.set(chart, ro);
  return chart;
}

export function destroyChart(chart: uPlot | null): void {
  if (!chart) return;
  observers.get(chart)?.disconnect();
  chart.destroy();
}

export const bars = uPlot.paths.bars!({ size: [0.8, 40] });

export { uPlot };
export const axisStyle = axis;
