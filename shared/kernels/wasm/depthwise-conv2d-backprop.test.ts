// Checks the composed wasm DepthwiseConv2dNativeBackpropFilter/Input kernels against cpu on identical
// inputs: channel multipliers 1-3, strides 1/2/mixed, same/valid/explicit padding, dilation 2.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import {
  compareWithCpu, REL_TOLERANCE, relativeError, runOn, seeded, setUpBackends, sizeOf, takeDilatedTaps,
  zeroInsertFilter,
} from './testing.ts';

type Shape4 = [number, number, number, number];
type Pad = 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];

interface Case {
  x: Shape4;
  filter: Shape4; // [fH, fW, C, multiplier]
  strides: number | [number, number];
  pad: Pad;
}

const cases: Case[] = [
  { x: [2, 8, 8, 3], filter: [3, 3, 3, 1], strides: 1, pad: 'valid' },
  { x: [2, 8, 8, 3], filter: [3, 3, 3, 1], strides: 1, pad: 'same' },
  { x: [2, 9, 7, 3], filter: [3, 3, 3, 2], strides: 2, pad: 'same' },
  { x: [2, 9, 7, 3], filter: [3, 2, 3, 2], strides: 2, pad: 'valid' },
  { x: [1, 10, 11, 2], filter: [5, 4, 2, 3], strides: [3, 2], pad: 'same' },
  { x: [3, 6, 6, 4], filter: [2, 2, 4, 1], strides: 2, pad: 'valid' },
  { x: [2, 9, 7, 3], filter: [3, 3, 3, 1], strides: [2, 1], pad: [[0, 0], [1, 2], [2, 0], [0, 0]] },
  // Explicit padding wider than the filter: the input gradient must crop, not pad.
  { x: [1, 5, 6, 2], filter: [2, 2, 2, 2], strides: 1, pad: [[0, 0], [3, 1], [0, 4], [0, 0]] },
  { x: [8, 16, 16, 16], filter: [3, 3, 16, 1], strides: 1, pad: 'same' },
];

function dyShapeOf(c: Case, dilations: [number, number] = [1, 1]): number[] {
  return tf.backend_util.computeConv2DInfo(c.x, c.filter, c.strides, dilations, c.pad, undefined, true).outShape;
}

function filterGrad(c: Case, filterShape: Shape4, dilations: [number, number], dyShape: number[]) {
  const x = seeded(sizeOf(c.x), 11);
  const dy = seeded(sizeOf(dyShape), 12);
  return () => tf.engine().runKernel(
    'DepthwiseConv2dNativeBackpropFilter',
    { x: tf.tensor(x, c.x), dy: tf.tensor(dy, dyShape) },
    { strides: c.strides, dilations, pad: c.pad, filterShape },
  ) as tf.Tensor;
}

function inputGrad(c: Case, filter: { values: number[]; shape: Shape4 }, dilations: [number, number], dyShape: number[]) {
  const dy = seeded(sizeOf(dyShape), 12);
  return () => tf.engine().runKernel(
    'DepthwiseConv2dNativeBackpropInput',
    { dy: tf.tensor(dy, dyShape), filter: tf.tensor(filter.values, filter.shape) },
    { strides: c.strides, dilations, pad: c.pad, inputShape: c.x },
  ) as tf.Tensor;
}

describe('wasm DepthwiseConv2dNativeBackpropFilter / BackpropInput', () => {
  before(setUpBackends);

  for (const c of cases) {
    const name = `x ${c.x} filter ${c.filter} strides ${c.strides} pad ${JSON.stringify(c.pad)}`;
    test(`filter gradient, ${name}, matches cpu`, async (t) => {
      const r = await compareWithCpu(filterGrad(c, c.filter, [1, 1], dyShapeOf(c)));
      t.diagnostic(`relative error ${r.rel.toExponential(2)}, max abs ${r.maxAbs.toExponential(2)}`);
      assert.deepEqual(r.wasm.shape, c.filter);
      assert.ok(r.rel < REL_TOLERANCE, `relative error ${r.rel}`);
    });
    test(`input gradient, ${name}, matches cpu`, async (t) => {
      const filter = { values: seeded(sizeOf(c.filter), 13), shape: c.filter };
      const r = await compareWithCpu(inputGrad(c, filter, [1, 1], dyShapeOf(c)));
      t.diagnostic(`relative error ${r.rel.toExponential(2)}, max abs ${r.maxAbs.toExponential(2)}`);
      assert.deepEqual(r.wasm.shape, c.x);
      assert.ok(r.rel < REL_TOLERANCE, `relative error ${r.rel}`);
    });
  }

  // tfjs cpu ignores `dilations` in both gradient kernels, so dilated results are checked against
  // cpu on the equivalent zero-inserted filter (same output, same padding).
  const dilatedCases: Case[] = [
    { x: [2, 11, 10, 3], filter: [3, 2, 3, 2], strides: 1, pad: 'same' },
    { x: [2, 11, 10, 3], filter: [3, 3, 3, 1], strides: 1, pad: 'valid' },
  ];
  const dilations: [number, number] = [2, 2];
  for (const c of dilatedCases) {
    const name = `dilations 2, x ${c.x} filter ${c.filter} pad ${c.pad}`;
    const wide = zeroInsertFilter(seeded(sizeOf(c.filter), 13), c.filter, dilations);
    const wideCase: Case = { ...c, filter: wide.shape };
    const dyShape = dyShapeOf(c, dilations);

    test(`filter gradient, ${name}, matches the zero-inserted filter on cpu`, async (t) => {
      const wasm = await runOn('wasm', filterGrad(c, c.filter, dilations, dyShape));
      const cpu = await runOn('cpu', filterGrad(wideCase, wide.shape, [1, 1], dyShape));
      const rel = relativeError(wasm.values, takeDilatedTaps(cpu.values, c.filter, dilations));
      t.diagnostic(`relative error ${rel.toExponential(2)}`);
      assert.ok(rel < REL_TOLERANCE, `relative error ${rel}`);
    });
    test(`input gradient, ${name}, matches the zero-inserted filter on cpu`, async (t) => {
      const narrow = { values: seeded(sizeOf(c.filter), 13), shape: c.filter };
      const wasm = await runOn('wasm', inputGrad(c, narrow, dilations, dyShape));
      const cpu = await runOn('cpu', inputGrad(wideCase, wide, [1, 1], dyShape));
      const rel = relativeError(wasm.values, cpu.values);
      t.diagnostic(`relative error ${rel.toExponential(2)}`);
      assert.ok(rel < REL_TOLERANCE, `relative error ${rel}`);
    });
  }

  test('tf.grad through depthwiseConv2d (stride 2, same, multiplier 2) matches cpu for x and filter', async () => {
    const xv = seeded(2 * 9 * 9 * 3, 14);
    const fv = seeded(3 * 3 * 3 * 2, 15);
    const grads = (which: 0 | 1) => () => {
      const f = (x: tf.Tensor, w: tf.Tensor) =>
        tf.sum(tf.square(tf.depthwiseConv2d(x as tf.Tensor4D, w as tf.Tensor4D, 2, 'same')));
      const g = tf.grads(f)([tf.tensor4d(xv, [2, 9, 9, 3]), tf.tensor4d(fv, [3, 3, 3, 2])]);
      return g[which] as tf.Tensor;
    };
    for (const which of [0, 1] as const) {
      const r = await compareWithCpu(grads(which));
      assert.ok(r.rel < REL_TOLERANCE, `gradient ${which}: relative error ${r.rel}`);
    }
  });
});
