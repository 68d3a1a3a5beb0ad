// Runs the coverage cases on a backend and compares every weight's gradient with the cpu backend's:
// pass / missing kernel (which) / numeric disagreement (max abs and max relative difference).
// Isomorphic (Node and browsers); the caller imports and initialises the backends it names.
import * as tf from '@tensorflow/tfjs';
import { COVERAGE_CASES, type CaseGroup, type CoverageCase } from './cases.ts';
import { seeded, sizeOf } from './seeded.ts';

export type CoverageStatus = 'pass' | 'missing-kernel' | 'mismatch' | 'error';

export interface CoverageRow {
  readonly case: string;
  readonly group: CaseGroup;
  readonly backend: string;
  readonly status: CoverageStatus;
  /** The kernel the backend lacks, for 'missing-kernel'. */
  readonly kernel: string | null;
  /** Largest |backend - cpu| over all gradient entries; null when nothing was computed. */
  readonly maxAbsDiff: number | null;
  /** Worst per-weight relative difference (see compareGradients); null when nothing was computed. */
  readonly maxRelDiff: number | null;
  readonly tolerance: number;
  readonly message: string | null;
  readonly ms: number;
}

/**
 * Relative tolerance per backend, max over weights of max|backend - cpu| / scale (compareGradients).
 * - cpu: the reference itself; runs are deterministic, so any difference is a bug.
 * - wasm: the bar the issue sets for our kernels (1e-5). XNNPACK and our compositions sum in another
 *   order than cpu; measured worst 9.9e-7 (the MNIST-size CNN), so 10x headroom.
 * - webgpu: WGSL allows relaxed float math (exp, log, tanh, division need not be correctly rounded)
 *   and tfjs-webgpu sums matmuls, convolutions and reductions in tiles, in parallel. On SwiftShader
 *   the worst measured is 7.9e-7 (BatchNormalization), but real GPUs may use fused multiply-add,
 *   other tile sizes and faster transcendental approximations, so 1e-4. A wrong kernel (a dropped
 *   tap, a mis-routed max, a wrong padding) shows up as 1e-2 or more, far above either bar.
 * - webgl: like webgpu (not part of the matrix; kept for ad hoc runs with ?backends=webgl).
 */
export const REL_TOLERANCE: Readonly<Record<string, number>> = { cpu: 1e-6, wasm: 1e-5, webgpu: 1e-4, webgl: 1e-4 };

export interface Gradients {
  readonly loss: number;
  readonly values: Float32Array[];
}

/** Same weights on every backend: seeded per weight, positive where a layer needs it (variances, scales). */
export function seedWeights(model: tf.LayersModel): void {
  tf.tidy(() => {
    model.setWeights(model.weights.map((w, i) => {
      const shape = w.shape.map((d) => {
        if (d === null) throw new Error(`weight ${w.name} has an unknown dimension`);
        return d;
      });
      const v = seeded(sizeOf(shape), 100 + i);
      const positive = /variance|gamma/.test(w.name);
      return tf.tensor(v.map((x) => (positive ? 1 + 0.1 * x : 0.4 * x)), shape);
    }));
  });
}

/** Gradients of the case's loss w.r.t. every trainable weight, computed on `backend`. */
export async function caseGradients(c: CoverageCase, backend: string): Promise<Gradients> {
  if (!(await tf.setBackend(backend))) throw new Error(`backend ${backend} failed to initialise`);
  const model = c.build();
  try {
    seedWeights(model);
    const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
    const [loss, grads] = tf.tidy(() => {
      const { value, grads: byName } = tf.variableGrads(() => c.loss(model.apply(c.input(), { training: true }) as tf.Tensor), vars);
      return [value, vars.map((v) => {
        const g = byName[v.name];
        if (g === undefined) throw new Error(`no gradient for ${v.name}`);
        return g;
      })] as const;
    });
    try {
      const values = await Promise.all(grads.map(async (g) => Float32Array.from(await g.data())));
      return { loss: (await loss.data())[0] ?? Number.NaN, values };
    } finally {
      loss.dispose();
      for (const g of grads) g.dispose();
    }
  } finally {
    model.dispose();
  }
}

export interface GradientDiff {
  readonly maxAbs: number;
  /** Infinity when shapes differ or the backend produced a non-finite value where cpu did not. */
  readonly maxRel: number;
}

/**
 * max |actual - expected| and the worst per-weight relative difference. A weight's scale is its
 * largest cpu gradient entry, but at least 10% of the model's largest, so a weight whose true
 * gradient is ~0 (a bias right before batch norm: pure rounding noise) is held to the model-wide
 * scale instead of its own noise.
 */
export function compareGradients(actual: readonly Float32Array[], expected: readonly Float32Array[]): GradientDiff {
  if (actual.length !== expected.length) return { maxAbs: Number.POSITIVE_INFINITY, maxRel: Number.POSITIVE_INFINITY };
  const scaleOf = (g: Float32Array): number => g.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  const global = Math.max(0, ...expected.map(scaleOf));
  let maxAbs = 0;
  let maxRel = 0;
  expected.forEach((e, i) => {
    const a = actual[i];
    if (a === undefined || a.length !== e.length) {
      maxAbs = maxRel = Number.POSITIVE_INFINITY;
      return;
    }
    let diff = 0;
    for (let j = 0; j < e.length; ++j) {
      const d = Math.abs((a[j] as number) - (e[j] as number));
      diff = Number.isNaN(d) ? Number.POSITIVE_INFINITY : Math.max(diff, d);
    }
    maxAbs = Math.max(maxAbs, diff);
    const scale = Math.max(scaleOf(e), 0.1 * global, Number.MIN_VALUE);
    maxRel = Math.max(maxRel, diff / scale);
  });
  return { maxAbs, maxRel };
}

/** The kernel name in tfjs's "Kernel 'X' not registered for backend 'Y'" error, if that is the error. */
export function missingKernel(err: unknown): string | null {
  const m = /Kernel '([^']+)' not registered/.exec(err instanceof Error ? err.message : String(err));
  return m ? (m[1] ?? null) : null;
}

export interface CoverageOptions {
  readonly cases?: readonly CoverageCase[];
  readonly tolerance?: (backend: string) => number;
  readonly onRow?: (row: CoverageRow) => void;
  readonly now?: () => number;
}

const finiteOrNull = (x: number): number | null => (Number.isFinite(x) ? x : null);

/**
 * One row per case x backend. The cpu reference is computed once per case; a case whose cpu run
 * fails, or whose cpu gradients are all zero (it would test nothing), is an 'error' on every backend.
 */
export async function runCoverage(backends: readonly string[], opts: CoverageOptions = {}): Promise<CoverageRow[]> {
  const now = opts.now ?? (() => performance.now());
  const tolerance = opts.tolerance ?? ((b: string) => REL_TOLERANCE[b] ?? 1e-4);
  const rows: CoverageRow[] = [];
  const emit = (row: CoverageRow): void => {
    rows.push(row);
    opts.onRow?.(row);
  };
  for (const c of opts.cases ?? COVERAGE_CASES) {
    let reference: Gradients | null = null;
    let refError: string | null = null;
    try {
      reference = await caseGradients(c, 'cpu');
      if (!reference.values.some((g) => g.some((v) => v !== 0))) refError = 'every cpu gradient is zero: the case tests nothing';
    } catch (err) {
      refError = `cpu reference failed: ${errorText(err)}`;
    }
    for (const backend of backends) {
      const base = { case: c.name, group: c.group, backend, tolerance: tolerance(backend) };
      if (reference === null || refError !== null) {
        emit({ ...base, status: 'error', kernel: null, maxAbsDiff: null, maxRelDiff: null, message: refError, ms: 0 });
        continue;
      }
      const t0 = now();
      try {
        const tensorsBefore = tf.memory().numTensors;
        const got = await caseGradients(c, backend);
        const leaked = tf.memory().numTensors - tensorsBefore;
        const d = compareGradients(got.values, reference.values);
        const ok = d.maxRel <= base.tolerance && leaked === 0;
        emit({
          ...base,
          status: ok ? 'pass' : leaked !== 0 ? 'error' : 'mismatch',
          kernel: null,
          maxAbsDiff: finiteOrNull(d.maxAbs),
          maxRelDiff: finiteOrNull(d.maxRel),
          message: leaked !== 0 ? `leaked ${leaked} tensors` : Number.isFinite(d.maxRel) ? null : 'non-finite or misshapen gradients',
          ms: now() - t0,
        });
      } catch (err) {
        const kernel = missingKernel(err);
        emit({ ...base, status: kernel ? 'missing-kernel' : 'error', kernel, maxAbsDiff: null, maxRelDiff: null, message: errorText(err), ms: now() - t0 });
      }
    }
  }
  return rows;
}

function errorText(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).slice(0, 500);
}
