// Checks the composed wasm Conv2DBackpropFilter against the cpu backend's kernel on identical inputs:
// strides 1/2/mixed, same/valid/explicit padding, odd shapes, batch 1, and the dilation extension.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import {
  compareWithCpu, REL_TOLERANCE, runOn, seeded, setUpBackends, sizeOf, takeDilatedTaps,
} from './testing.ts';

type Shape4 = [number, number, number, number];
type Pad = 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];

interface Case {
  x: Shape4;
  filter: Shape4;
  strides: number | [number, number];
  pad: Pad;
}

const cases: Case[] = [
  { x: [2, 8, 8, 3], filter: [3, 3, 3, 4], strides: 1, pad: 'valid' },
  { x: [2, 8, 8, 3], filter: [3, 3, 3, 4], strides: 1, pad: 'same' },
  { x: [2, 9, 7, 3], filter: [3, 3, 3, 4], strides: 2, pad: 'same' },
  { x: [2, 9, 7, 3], filter: [3, 2, 3, 5], strides: 2, pad: 'valid' },
  { x: [1, 10, 11, 2], filter: [5, 4, 2, 3], strides: [3, 2], pad: 'same' },
  { x: [3, 6, 6, 1], filter: [2, 2, 1, 2], strides: 2, pad: 'valid' }, // windows tile exactly
  { x: [2, 9, 7, 3], filter: [3, 3, 3, 4], strides: [2, 1], pad: [[0, 0], [1, 2], [2, 0], [0, 0]] },
  { x: [1, 5, 5, 4], filter: [1, 1, 4, 6], strides: 1, pad: 'valid' }, // pointwise (SeparableConv2D)
  { x: [4, 1, 12, 3], filter: [1, 3, 3, 4], strides: [1, 2], pad: 'same' }, // Conv1D as NHWC, H = 1
  { x: [8, 16, 16, 8], filter: [3, 3, 8, 16], strides: 1, pad: 'same' },
];

function outShape(c: Case, dilations: [number, number] = [1, 1]): number[] {
  return tf.backend_util.computeConv2DInfo(c.x, c.filter, c.strides, dilations, c.pad).outShape;
}

function filterGrad(c: Case, filterShape: Shape4, extraAttrs: tf.NamedAttrMap = {}, dilations?: [number, number]) {
  const dyShape = outShape(c, dilations);
  const x = seeded(sizeOf(c.x), 1);
  const dy = seeded(sizeOf(dyShape), 2);
  return () => tf.engine().runKernel(
    'Conv2DBackpropFilter',
    { x: tf.tensor(x, c.x), dy: tf.tensor(dy, dyShape) },
    { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', filterShape, ...extraAttrs },
  ) as tf.Tensor;
}

describe('wasm Conv2DBackpropFilter', () => {
  before(setUpBackends);

  for (const c of cases) {
    test(`x ${c.x} filter ${c.filter} strides ${c.strides} pad ${JSON.stringify(c.pad)} matches cpu`, async (t) => {
      const r = await compareWithCpu(filterGrad(c, c.filter));
      t.diagnostic(`relative error ${r.rel.toExponential(2)}, max abs ${r.maxAbs.toExponential(2)}`);
      assert.deepEqual(r.wasm.shape, c.filter);
      assert.ok(r.rel < REL_TOLERANCE, `relative error ${r.rel} (max abs ${r.maxAbs})`);
    });
  }

  // tfjs 4.22 never sends dilations here (its Conv2D gradient rejects them); the kernel honours the
  // attribute anyway. Reference: the cpu gradient for the equivalent zero-inserted filter.
  for (const pad of ['same', 'valid'] as const) {
    test(`dilations [2,2] with pad ${pad} match the zero-inserted-filter gradient on cpu`, async (t) => {
      const c: Case = { x: [2, 11, 10, 3], filter: [3, 2, 3, 4], strides: 1, pad };
      const dilations: [number, number] = [2, 2];
      const effective: Shape4 = [5, 3, 3, 4];
      const wasm = await runOn('wasm', filterGrad(c, c.filter, { dilations }, dilations));
      const cpu = await runOn('cpu', filterGrad(c, effective, {}, dilations));
      const expected = takeDilatedTaps(cpu.values, c.filter, dilations);
      let diff = 0;
      let scale = 0;
      expected.forEach((e, i) => {
        diff = Math.max(diff, Math.abs(e - (wasm.values[i] as number)));
        scale = Math.max(scale, Math.abs(e));
      });
      t.diagnostic(`relative error ${(diff / scale).toExponential(2)}`);
      assert.deepEqual(wasm.shape, c.filter);
      assert.ok(diff / scale < REL_TOLERANCE, `relative error ${diff / scale}`);
    });
  }

  test('tf.grad of conv2d w.r.t. the filter matches cpu (stride 2, same)', async () => {
    const xv = seeded(2 * 9 * 9 * 3, 3);
    const fv = seeded(3 * 3 * 3 * 4, 4);
    const r = await compareWithCpu(() => {
      const x = tf.tensor4d(xv, [2, 9, 9, 3]);
      const loss = (f: tf.Tensor) => tf.sum(tf.square(tf.conv2d(x, f as tf.Tensor4D, 2, 'same')));
      return tf.grad(loss)(tf.tensor4d(fv, [3, 3, 3, 4]));
    });
    assert.ok(r.rel < REL_TOLERANCE, `relative error ${r.rel}`);
  });

  test('rejects NCHW with a clear error instead of a wrong answer', async () => {
    await setUpBackends();
    await tf.setBackend('wasm');
    assert.throws(
      () => tf.tidy(() => tf.engine().runKernel(
        'Conv2DBackpropFilter',
        { x: tf.zeros([1, 3, 5, 5]), dy: tf.zeros([1, 2, 3, 3]) },
        { strides: 1, pad: 'valid', dataFormat: 'NCHW', filterShape: [3, 3, 3, 2] },
      )),
      /NHWC/,
    );
  });
});
