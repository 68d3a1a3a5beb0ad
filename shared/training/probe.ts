// Gradient-step probe: how many samples/s a backend computes gradients for a given model, on
// synthetic data, excluding the network. probeBackends measures every candidate within the start-up
// budget (the worker's backend choice); probeGradientStep is the benchmark's "isolated" figure.

import { tf } from './tf.ts';
import { buildModel } from './model.ts';
import { computeGradients, type Batch, type StepSpec } from './gradient-step.ts';
import { sliceMs, type Candidate, type ProbeOutcome } from './backend-choice.ts';
import type { BackendName } from '../protocol/messages.ts';
import { featureCount } from '../data/data-spec.ts';

export interface ProbeOptions {
  readonly batchSize: number;
  /** Measure for about this long after warm-up (shader compilation, first allocation). */
  readonly budgetMs: number;
  readonly warmupSteps?: number;
  readonly now?: () => number;
}

export interface ProbeFigures {
  readonly backend: string;
  readonly samplesPerSec: number;
  readonly steps: number;
  readonly warmupMs: number;
}

export async function probeGradientStep(topology: unknown, spec: StepSpec, opts: ProbeOptions): Promise<ProbeFigures> {
  const now = opts.now ?? (() => performance.now());
  const model = await buildModel(topology);
  try {
    const batch = syntheticBatch(spec, opts.batchSize);
    const w0 = now();
    for (let i = 0; i < (opts.warmupSteps ?? 2); i++) await computeGradients(model, spec, batch);
    const warmupMs = now() - w0;
    const t0 = now();
    let steps = 0;
    while (now() - t0 < opts.budgetMs || steps < 2) {
      await computeGradients(model, spec, batch);
      steps++;
    }
    const ms = now() - t0;
    return { backend: tf.getBackend(), samplesPerSec: (steps * opts.batchSize * 1000) / ms, steps, warmupMs };
  } finally {
    model.dispose();
  }
}

/** A fixed pseudo-random batch laid out like the job's rows (see shared/data/data-spec.ts). */
export function syntheticBatch(spec: StepSpec, batchSize: number): Batch {
  const d = spec.data;
  const values = batchSize * featureCount(d);
  let x: Uint8Array;
  if (d.features.dtype === 'uint8') {
    x = new Uint8Array(values);
    for (let i = 0; i < values; i++) x[i] = (i * 2654435761) >>> 24;
  } else {
    const f = new Float32Array(values);
    for (let i = 0; i < values; i++) f[i] = (((i * 2654435761) >>> 24) - 128) / 64;
    x = new Uint8Array(f.buffer);
  }
  let y: Uint8Array;
  const t = d.target;
  if (t.kind === 'regression') {
    const f = new Float32Array(batchSize * t.outputs);
    for (let i = 0; i < f.length; i++) f[i] = (i % 7) / 7;
    y = new Uint8Array(f.buffer);
  } else if (t.dtype === 'uint8') {
    y = new Uint8Array(batchSize);
    for (let i = 0; i < batchSize; i++) y[i] = i % t.numClasses;
  } else {
    const c = new Int32Array(batchSize);
    for (let i = 0; i < batchSize; i++) c[i] = i % t.numClasses;
    y = new Uint8Array(c.buffer);
  }
  return { x, y, numSamples: batchSize };
}

export interface BackendProbeOptions {
  readonly batchSize: number;
  /** Whole budget for every candidate (see PROBE_BUDGET_MS). */
  readonly budgetMs: number;
  /** Measured steps stop after this long (or at the candidate's slice end); the rest flows on. */
  readonly measureMs?: number;
  /** Makes `name` the active backend; false when it cannot start. */
  readonly useBackend: (name: BackendName) => Promise<boolean>;
  readonly now?: () => number;
  /** Each outcome as soon as it is measured (progress display, logs). */
  readonly onOutcome?: (o: ProbeOutcome) => void;
}

const TIMED_OUT = Symbol('timed out');

/** `p`, or TIMED_OUT once `ms` have passed; `p` keeps running either way. */
function within<T>(p: Promise<T>, ms: number): Promise<T | typeof TIMED_OUT> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(() => resolve(TIMED_OUT), Math.max(0, ms));
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

function errorText(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).slice(0, 300);
}

/**
 * One candidate: start it, build the model, one warm-up step (shader compilation, first
 * allocations), then measured steps until `measureMs` or `deadlineAt`. A step that does not finish
 * by the deadline is left running (its model is disposed when it settles) and the outcome is a
 * timeout. Non-finite loss or gradients on synthetic data count as failure: training would only
 * send gradients the coordinator refuses.
 */
export async function probeBackend(
  candidate: Candidate,
  topology: unknown,
  spec: StepSpec,
  opts: {
    batchSize: number;
    deadlineAt: number;
    measureMs: number;
    useBackend: (name: BackendName) => Promise<boolean>;
    now: () => number;
    /** Test hook: awaited at the start of every step (simulates a slow device). */
    beforeStep?: () => Promise<void>;
  },
): Promise<ProbeOutcome> {
  const { now } = opts;
  const base = { backend: candidate.backend, software: candidate.software };
  const t0 = now();
  const failed = (error: string, warmupMs = now() - t0, steps = 0): ProbeOutcome => ({ ...base, status: 'failed', samplesPerSec: 0, warmupMs, steps, error });
  let started: boolean;
  try {
    started = await opts.useBackend(candidate.backend);
  } catch (err) {
    return failed(`did not start: ${errorText(err)}`);
  }
  if (!started) return failed('did not start');
  let model: tf.LayersModel;
  try {
    model = await buildModel(topology);
  } catch (err) {
    return failed(`model did not build: ${errorText(err)}`);
  }
  const batch = syntheticBatch(spec, opts.batchSize);
  let pending: Promise<unknown> = Promise.resolve();
  const step = async (): Promise<void> => {
    await opts.beforeStep?.();
    const r = await computeGradients(model, spec, batch);
    if (!Number.isFinite(r.loss) || !r.gradients.every(Number.isFinite)) throw new Error('non-finite gradients on a probe step');
  };
  try {
    const run = (minWaitMs = 0): Promise<void | typeof TIMED_OUT> => {
      const s = step();
      pending = s.catch(() => undefined);
      return within(s, Math.max(minWaitMs, opts.deadlineAt - now()));
    };
    if ((await run()) === TIMED_OUT) {
      const waited = now() - t0;
      return { ...base, status: 'timeout', samplesPerSec: (opts.batchSize * 1000) / Math.max(1, waited), warmupMs: waited, steps: 0 };
    }
    const warmupMs = now() - t0;
    const m0 = now();
    let steps = 0;
    let measuredMs = 0;
    while (steps === 0 || (now() - m0 < opts.measureMs && now() < opts.deadlineAt)) {
      const s0 = now();
      // The first measured step may wait as long as the warm-up took (it is never slower), so a
      // warm-up that ends at the deadline still yields a figure instead of a meaningless bound.
      if ((await run(steps === 0 ? warmupMs : 0)) === TIMED_OUT) {
        if (steps > 0) break;
        return { ...base, status: 'timeout', samplesPerSec: (opts.batchSize * 1000) / Math.max(1, now() - s0), warmupMs, steps: 0 };
      }
      steps++;
      measuredMs = now() - m0;
    }
    return { ...base, status: 'ok', samplesPerSec: (steps * opts.batchSize * 1000) / Math.max(1e-3, measuredMs), warmupMs, steps };
  } catch (err) {
    return failed(errorText(err));
  } finally {
    const m = model;
    void pending.finally(() => m.dispose());
  }
}

/** Probes the candidates in order within `budgetMs` all together; see backend-choice.ts. */
export async function probeBackends(candidates: readonly Candidate[], topology: unknown, spec: StepSpec, opts: BackendProbeOptions): Promise<ProbeOutcome[]> {
  const now = opts.now ?? (() => performance.now());
  const end = now() + opts.budgetMs;
  const outcomes: ProbeOutcome[] = [];
  for (const [i, c] of candidates.entries()) {
    const slice = sliceMs(end - now(), candidates.length - i, c);
    const o = await probeBackend(c, topology, spec, {
      batchSize: opts.batchSize,
      deadlineAt: now() + slice,
      measureMs: Math.min(opts.measureMs ?? 400, slice / 2),
      useBackend: opts.useBackend,
      now,
    });
    outcomes.push(o);
    opts.onOutcome?.(o);
  }
  return outcomes;
}
