// Test support for the wasm kernels (imported by *.test.ts only): runs one computation on cpu and on
// wasm from the same plain arrays, measures the relative error, and checks for leaked wasm buffers.
// Loads '@tensorflow/tfjs-backend-wasm', so production code must not import this file.
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { registerFlockKernels } from '../index.ts';

/** Relative tolerance for wasm vs cpu: max |wasm - cpu| / max |cpu|. */
export const REL_TOLERANCE = 1e-5;

let ready: Promise<void> | undefined;

/** Registers the Flock kernels and initialises both backends once per process. */
export function setUpBackends(): Promise<void> {
  ready ??= (async () => {
    registerFlockKernels();
    if (!(await tf.setBackend('wasm'))) throw new Error('wasm backend failed to initialise');
    if (!(await tf.setBackend('cpu'))) throw new Error('cpu backend failed to initialise');
  })();
  return ready;
}

export { seeded, sizeOf } from '../coverage/seeded.ts';

export interface BackendResult {
  values: Float32Array;
  shape: number[];
}

/**
 * Runs `fn` on `backend` inside a tidy and copies its result out. On wasm it also asserts that no
 * wasm buffer outlives the call, which catches intermediates a composed kernel forgot to free.
 */
export async function runOn(backend: 'cpu' | 'wasm', fn: () => tf.Tensor): Promise<BackendResult> {
  await setUpBackends();
  await tf.setBackend(backend);
  const dataIdsBefore = tf.engine().backend.numDataIds();
  const tensorsBefore = tf.memory().numTensors;
  const result = tf.tidy(() => {
    const t = fn();
    return { values: Float32Array.from(t.dataSync()), shape: t.shape.slice() };
  });
  const dataIdsAfter = tf.engine().backend.numDataIds();
  if (dataIdsAfter !== dataIdsBefore || tf.memory().numTensors !== tensorsBefore) {
    throw new Error(
      `${backend}: leaked ${dataIdsAfter - dataIdsBefore} buffers / ` +
        `${tf.memory().numTensors - tensorsBefore} tensors`,
    );
  }
  return result;
}

/** max |actual - expected| / max |expected|; Infinity when the lengths differ. */
export function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) return Number.POSITIVE_INFINITY;
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; ++i) {
    const e = expected[i] as number;
    const a = actual[i] as number;
    if (Number.isNaN(a) !== Number.isNaN(e)) return Number.POSITIVE_INFINITY;
    diff = Math.max(diff, Math.abs(a - e));
    scale = Math.max(scale, Math.abs(e));
  }
  return scale === 0 ? diff : diff / scale;
}

export interface Comparison {
  rel: number;
  maxAbs: number;
  wasm: BackendResult;
  cpu: BackendResult;
}

/** Runs the same builder on cpu and wasm; the builder must create its tensors from plain arrays. */
export async function compareWithCpu(fn: () => tf.Tensor): Promise<Comparison> {
  const cpu = await runOn('cpu', fn);
  const wasm = await runOn('wasm', fn);
  let maxAbs = 0;
  for (let i = 0; i < Math.min(cpu.values.length, wasm.values.length); ++i) {
    maxAbs = Math.max(maxAbs, Math.abs((cpu.values[i] as number) - (wasm.values[i] as number)));
  }
  return { rel: relativeError(wasm.values, cpu.values), maxAbs, wasm, cpu };
}

/**
 * A dilated filter [fH,fW,C,M] as the undilated filter it acts like: [(fH-1)dh+1, (fW-1)dw+1, C, M]
 * with zeros between taps. tfjs cpu ignores `dilations` in its conv gradient kernels, so dilated
 * cases are checked against cpu on this equivalent undilated filter.
 */
export function zeroInsertFilter(
  values: readonly number[], shape: readonly number[], dilations: [number, number],
): { values: number[]; shape: [number, number, number, number] } {
  const [fh = 0, fw = 0, c = 0, m = 0] = shape;
  const [dh, dw] = dilations;
  const eh = (fh - 1) * dh + 1;
  const ew = (fw - 1) * dw + 1;
  const out = new Array<number>(eh * ew * c * m).fill(0);
  for (let p = 0; p < fh; ++p) {
    for (let q = 0; q < fw; ++q) {
      for (let k = 0; k < c * m; ++k) {
        out[((p * dh) * ew + q * dw) * c * m + k] = values[(p * fw + q) * c * m + k] as number;
      }
    }
  }
  return { values: out, shape: [eh, ew, c, m] };
}

/** Inverse view of zeroInsertFilter: the taps of an undilated-equivalent filter gradient. */
export function takeDilatedTaps(
  values: ArrayLike<number>, filterShape: readonly number[], dilations: [number, number],
): Float32Array {
  const [fh = 0, fw = 0, c = 0, m = 0] = filterShape;
  const [dh, dw] = dilations;
  const ew = (fw - 1) * dw + 1;
  const out = new Float32Array(fh * fw * c * m);
  for (let p = 0; p < fh; ++p) {
    for (let q = 0; q < fw; ++q) {
      for (let k = 0; k < c * m; ++k) {
        out[(p * fw + q) * c * m + k] = values[((p * dh) * ew + q * dw) * c * m + k] as number;
      }
    }
  }
  return out;
}
