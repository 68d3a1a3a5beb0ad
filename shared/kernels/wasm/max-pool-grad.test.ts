// Checks Flock's wasm MaxPoolGrad against cpu over pool sizes, strides and paddings, on data whose
// windows are often all negative (where the native wasm kernel fails), and tracks the native bug.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { replacedNativeKernel } from '../index.ts';
import { compareWithCpu, REL_TOLERANCE, seeded, setUpBackends, sizeOf } from './testing.ts';

type Pad = 'same' | 'valid';

function poolGrad(xShape: [number, number, number, number], size: [number, number], strides: [number, number],
  pad: Pad, offset: number) {
  const xv = seeded(sizeOf(xShape), 31, offset);
  const outShape = tf.backend_util.computePool2DInfo(xShape, size, strides, 1, pad).outShape;
  const dyv = seeded(sizeOf(outShape), 32);
  return () => {
    const f = (x: tf.Tensor) => tf.maxPool(x as tf.Tensor4D, size, strides, pad);
    return tf.grad(f)(tf.tensor4d(xv, xShape), tf.tensor4d(dyv, outShape as [number, number, number, number]));
  };
}

describe('wasm MaxPoolGrad (replacement)', () => {
  before(setUpBackends);

  const sweep: [[number, number], [number, number], Pad][] = [];
  for (const fh of [1, 2, 3]) {
    for (const fw of [2, 3]) {
      for (const s of [1, 2]) {
        for (const pad of ['same', 'valid'] as const) sweep.push([[fh, fw], [s, s], pad]);
      }
    }
  }
  for (const [size, strides, pad] of sweep) {
    test(`pool ${size} strides ${strides} ${pad}, mostly negative input, matches cpu`, async () => {
      const r = await compareWithCpu(poolGrad([2, 9, 7, 3], size, strides, pad, -0.6));
      assert.ok(r.rel < REL_TOLERANCE, `relative error ${r.rel} (max abs ${r.maxAbs})`);
    });
  }

  test('after relu (windows of zeros, ties) the gradient of a conv-relu-pool stack matches cpu', async () => {
    const xv = seeded(2 * 10 * 10 * 2, 33);
    const fv = seeded(3 * 3 * 2 * 4, 34, -0.3);
    const r = await compareWithCpu(() => {
      const x = tf.tensor4d(xv, [2, 10, 10, 2]);
      const f = (w: tf.Tensor) =>
        tf.sum(tf.square(tf.maxPool(tf.relu(tf.conv2d(x, w as tf.Tensor4D, 1, 'same')), 2, 2, 'same')));
      return tf.grad(f)(tf.tensor4d(fv, [3, 3, 2, 4]));
    });
    assert.ok(r.rel < REL_TOLERANCE, `relative error ${r.rel}`);
  });

  // Fails once tfjs fixes its kernel: then drop max-pool-grad.ts from REPLACED_WASM_KERNELS.
  test('the native wasm MaxPoolGrad it replaces is still wrong on an all-negative window', async () => {
    await setUpBackends();
    const native = replacedNativeKernel('MaxPoolGrad');
    assert.ok(native !== undefined, 'registerFlockKernels did not record the native MaxPoolGrad');
    await tf.setBackend('wasm');
    const backend = tf.backend() as BackendWasm;
    native.setupFunc?.(backend); // never set up: it was unregistered before the backend started
    const dx = tf.tidy(() => {
      const input = tf.tensor4d([-4, -3, -2, -1], [1, 2, 2, 1]);
      const dy = tf.tensor4d([1], [1, 1, 1, 1]);
      const out = native.kernelFunc({ inputs: { dy, input }, backend, attrs: { filterSize: 2, strides: 2, pad: 'valid' } });
      const info = Array.isArray(out) ? out[0] : out;
      assert.ok(info !== undefined);
      const values = Array.from(backend.typedArrayFromHeap(info));
      backend.disposeData(info.dataId);
      return values;
    });
    // The max is -1 at index 3; the native kernel credits index 0 instead.
    assert.notDeepEqual(dx, [0, 0, 0, 1]);
    const ours = await compareWithCpu(() => tf.grad((x: tf.Tensor) => tf.maxPool(x as tf.Tensor4D, 2, 2, 'valid'))(
      tf.tensor4d([-4, -3, -2, -1], [1, 2, 2, 1])));
    assert.deepEqual(Array.from(ours.wasm.values), [0, 0, 0, 1]);
  });
});
