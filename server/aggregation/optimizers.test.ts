// The flat optimizers against tfjs's own Adam/SGD-momentum on the same gradients.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../shared/training/tf.ts';
import { createOptimizer } from './optimizers.ts';

function compare(kind: 'adam' | 'sgd'): number {
  const n = 50;
  const init = Float32Array.from({ length: n }, (_, i) => Math.sin(i));
  const params = init.slice();
  const opt = createOptimizer(kind === 'adam' ? { kind: 'adam', learningRate: 0.01 } : { kind: 'sgd', learningRate: 0.01, momentum: 0.9 }, n);
  const v = tf.variable(tf.tensor1d(init));
  const ref = kind === 'adam' ? tf.train.adam(0.01, 0.9, 0.999, 1e-7) : tf.train.momentum(0.01, 0.9);
  for (let step = 0; step < 20; step++) {
    const g = Float32Array.from({ length: n }, (_, i) => Math.cos(i * (step + 1)) * 0.5);
    opt.apply(params, g, 0.01);
    tf.tidy(() => ref.applyGradients([{ name: v.name, tensor: tf.tensor1d(g) }]));
  }
  const expected = v.dataSync();
  let max = 0;
  for (let i = 0; i < n; i++) max = Math.max(max, Math.abs(expected[i]! - params[i]!));
  v.dispose();
  ref.dispose();
  return max;
}

test('flat Adam matches tf.train.adam over 20 steps', () => {
  assert.ok(compare('adam') < 1e-5, `max diff ${compare('adam')}`);
});

test('flat SGD with momentum matches tf.train.momentum over 20 steps', () => {
  assert.ok(compare('sgd') < 1e-5, `max diff ${compare('sgd')}`);
});

test('state and restore round trip; sizes are checked', () => {
  const a = createOptimizer({ kind: 'adam', learningRate: 0.1 }, 4);
  const p = new Float32Array([1, 2, 3, 4]);
  a.apply(p, new Float32Array([0.1, -0.2, 0.3, -0.4]), 0.1);
  const b = createOptimizer({ kind: 'adam', learningRate: 0.1 }, 4);
  b.restore(a.state());
  const p2 = p.slice();
  const g = new Float32Array([0.5, 0.5, -0.5, 0.5]);
  a.apply(p, g, 0.1);
  b.apply(p2, g, 0.1);
  assert.deepEqual([...p2], [...p]);
  assert.throws(() => a.apply(new Float32Array(3), new Float32Array(3), 0.1));
});
