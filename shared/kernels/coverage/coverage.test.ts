// The gradient coverage matrix in Node: every case's gradients on wasm (with the Flock kernels)
// agree with cpu within REL_TOLERANCE.wasm, plus checks that the comparison itself can fail.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { setUpBackends } from '../wasm/testing.ts';
import { COVERAGE_CASES } from './cases.ts';
import { compareGradients, missingKernel, REL_TOLERANCE, runCoverage } from './run.ts';

describe('gradient coverage matrix, Node wasm vs cpu', () => {
  before(setUpBackends);

  test('covers every layer, activation and loss the issue lists', () => {
    const names = COVERAGE_CASES.map((c) => c.name).join('\n');
    for (const want of [
      'Dense', 'Conv2D strides 1 same with bias', 'Conv2D strides 2 valid without bias', 'DepthwiseConv2D',
      'SeparableConv2D', 'MaxPooling2D', 'AveragePooling2D', 'GlobalAveragePooling2D', 'BatchNormalization',
      'LayerNormalization', 'Dropout', 'Flatten and Reshape', 'Embedding', 'SimpleRNN', 'LSTM', 'GRU',
      'Concatenate and Add', 'relu', 'relu6', 'elu', 'selu', 'gelu', 'sigmoid', 'tanh', 'softmax', 'leakyReLU',
      'loss softmax cross-entropy', 'loss sigmoid cross-entropy', 'loss categorical cross-entropy', 'loss mean squared error',
    ]) {
      assert.ok(names.includes(want), `no case for ${want}`);
    }
    assert.equal(new Set(COVERAGE_CASES.map((c) => c.name)).size, COVERAGE_CASES.length, 'case names must be unique');
  });

  for (const c of COVERAGE_CASES) {
    test(c.name, async (t) => {
      const [row] = await runCoverage(['wasm'], { cases: [c] });
      assert.ok(row);
      t.diagnostic(`max abs ${row.maxAbsDiff?.toExponential(2)}, max rel ${row.maxRelDiff?.toExponential(2)}`);
      assert.equal(row.status, 'pass', `${row.status}${row.kernel ? ` (${row.kernel})` : ''}: ${row.message ?? `rel ${row.maxRelDiff}`}`);
      assert.ok(row.maxRelDiff !== null && row.maxRelDiff <= REL_TOLERANCE.wasm!);
    });
  }

  test('compareGradients flags a wrong entry, a NaN and a shape change', () => {
    const ref = [Float32Array.from([1, -2, 0.5]), Float32Array.from([0, 0, 0])];
    assert.deepEqual(compareGradients(ref, ref), { maxAbs: 0, maxRel: 0 });
    const off = compareGradients([Float32Array.from([1, -2, 0.52]), ref[1]!], ref);
    assert.ok(Math.abs(off.maxRel - 0.01) < 1e-6, `rel ${off.maxRel}`);
    // The all-zero weight is held to 10% of the model scale (2): an error of 0.02 there is rel 0.1.
    assert.ok(Math.abs(compareGradients([ref[0]!, Float32Array.from([0, 0.02, 0])], ref).maxRel - 0.1) < 1e-6);
    assert.equal(compareGradients([Float32Array.from([1, Number.NaN, 0.5]), ref[1]!], ref).maxRel, Number.POSITIVE_INFINITY);
    assert.equal(compareGradients([ref[0]!], ref).maxRel, Number.POSITIVE_INFINITY);
  });

  test('a backend without a gradient kernel is reported as missing-kernel, naming it', async () => {
    assert.equal(missingKernel(new Error("Kernel 'Conv2DBackpropFilter' not registered for backend 'wasm'")), 'Conv2DBackpropFilter');
    const tf = await import('@tensorflow/tfjs');
    const ours = tf.getKernel('Conv2DBackpropFilter', 'wasm');
    assert.ok(ours);
    tf.unregisterKernel('Conv2DBackpropFilter', 'wasm');
    try {
      const conv = COVERAGE_CASES.find((c) => c.name.startsWith('Conv2D'))!;
      const [row] = await runCoverage(['wasm'], { cases: [conv] });
      assert.equal(row?.status, 'missing-kernel');
      assert.equal(row?.kernel, 'Conv2DBackpropFilter');
    } finally {
      tf.registerKernel(ours);
    }
  });
});
