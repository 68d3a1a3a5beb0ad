import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from './tf.ts';
import { initNodeBackend } from './node-backend.ts';
import { computeLocalUpdate } from './local-steps.ts';
import { computeGradients, type StepSpec } from './gradient-step.ts';

const spec: StepSpec = {
  loss: 'categoricalCrossentropy',
  data: { featureShape: [4], features: { dtype: 'uint8', scale: 1 / 255 }, target: { kind: 'classes', numClasses: 3, dtype: 'uint8' } },
};

function model(): tf.LayersModel {
  return tf.sequential({ layers: [tf.layers.dense({ inputShape: [4], units: 3, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }) })] });
}

const n = 48;
const batch = {
  x: Uint8Array.from({ length: n * 4 }, (_, i) => (i * 37) % 256),
  y: Uint8Array.from({ length: n }, (_, i) => i % 3),
  numSamples: n,
};
const weightsOf = (m: tf.LayersModel): Float32Array => Float32Array.from(m.getWeights().flatMap((w) => [...(w.dataSync() as Float32Array)]));

before(async () => {
  await initNodeBackend('wasm');
});

test('one local SGD step is lr x the gradient of that minibatch; weights are put back', async () => {
  const m = model();
  const w0 = weightsOf(m);
  const first = { x: batch.x.subarray(0, 16 * 4), y: batch.y.subarray(0, 16), numSamples: 16 };
  const g = await computeGradients(m, spec, first);
  const r = await computeLocalUpdate(m, spec, batch, { steps: 1, batchSize: 16, optimizer: { kind: 'sgd', learningRate: 0.5 } });
  for (let i = 0; i < g.gradients.length; i++) assert.ok(Math.abs(r.gradients[i]! - 0.5 * g.gradients[i]!) < 1e-5, `coordinate ${i}: ${r.gradients[i]} vs ${0.5 * g.gradients[i]!}`);
  assert.deepEqual([...weightsOf(m)], [...w0], 'the model is as it was');
  m.dispose();
});

test('H Adam steps move further than one, return a finite pseudo-gradient, and leak no tensors', async () => {
  const m = model();
  const one = await computeLocalUpdate(m, spec, batch, { steps: 1, batchSize: 16, optimizer: { kind: 'adam', learningRate: 0.01 } });
  const before = tf.memory().numTensors;
  const three = await computeLocalUpdate(m, spec, batch, { steps: 3, batchSize: 16, optimizer: { kind: 'adam', learningRate: 0.01 } });
  for (let k = 0; k < 5; k++) await computeLocalUpdate(m, spec, batch, { steps: 3, batchSize: 16, optimizer: { kind: 'adam', learningRate: 0.01 } });
  assert.equal(tf.memory().numTensors, before);
  const norm = (v: Float32Array): number => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  assert.ok(three.gradients.every(Number.isFinite));
  assert.ok(norm(three.gradients) > 2 * norm(one.gradients), `${norm(three.gradients)} vs ${norm(one.gradients)}`);
  assert.ok(Number.isFinite(three.loss) && three.loss > 0);
  m.dispose();
});
