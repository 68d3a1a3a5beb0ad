// End to end: tf.variableGrads of small models built from the common layers gives the same
// gradients on wasm (with the Flock kernels) as on cpu, and repeated steps leak neither tensors nor
// wasm buffers. This is what a volunteer's training step runs.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { REL_TOLERANCE, seeded, setUpBackends, sizeOf } from './testing.ts';

interface ModelCase {
  name: string;
  layers: () => tf.layers.Layer[];
  input: () => tf.Tensor;
  loss: (output: tf.Tensor) => tf.Scalar;
}

function classes(batch: number, n: number): tf.Tensor {
  return tf.oneHot(tf.tensor1d(Array.from({ length: batch }, (_, i) => (i * 3) % n), 'int32'), n);
}

const softmaxLoss = (n: number) => (out: tf.Tensor) =>
  tf.losses.softmaxCrossEntropy(classes(out.shape[0] ?? 0, n), out) as tf.Scalar;

const models: ModelCase[] = [
  {
    name: 'CNN: conv2d, maxPooling2d (valid and same), strided conv, dense',
    layers: () => [
      tf.layers.conv2d({ inputShape: [14, 14, 1], filters: 8, kernelSize: 3, activation: 'relu' }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.conv2d({ filters: 16, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu' }),
      tf.layers.maxPooling2d({ poolSize: 2, padding: 'same' }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 10 }),
    ],
    input: () => tf.tensor(seeded(6 * 14 * 14, 41, 1), [6, 14, 14, 1]),
    loss: softmaxLoss(10),
  },
  {
    name: 'depthwiseConv2d, batchNormalization, separableConv2d, averagePooling2d, globalAveragePooling2d',
    layers: () => [
      tf.layers.depthwiseConv2d({ inputShape: [12, 12, 3], kernelSize: 3, depthMultiplier: 2, strides: 2, padding: 'same' }),
      tf.layers.batchNormalization(),
      tf.layers.activation({ activation: 'relu6' }),
      tf.layers.separableConv2d({ filters: 8, kernelSize: 3, padding: 'same', activation: 'elu' }),
      tf.layers.averagePooling2d({ poolSize: 2 }),
      tf.layers.globalAveragePooling2d({}),
      tf.layers.dense({ units: 4 }),
    ],
    input: () => tf.tensor(seeded(4 * 12 * 12 * 3, 42), [4, 12, 12, 3]),
    loss: softmaxLoss(4),
  },
  {
    name: 'conv1d, globalMaxPooling1d, dense',
    layers: () => [
      tf.layers.conv1d({ inputShape: [16, 3], filters: 6, kernelSize: 3, strides: 2, activation: 'tanh' }),
      tf.layers.conv1d({ filters: 4, kernelSize: 2, padding: 'same' }),
      tf.layers.globalMaxPooling1d({}),
      tf.layers.dense({ units: 3 }),
    ],
    input: () => tf.tensor(seeded(4 * 16 * 3, 43), [4, 16, 3]),
    loss: softmaxLoss(3),
  },
  {
    name: 'conv2dTranspose, conv2d, flatten, dense',
    layers: () => [
      tf.layers.conv2dTranspose({ inputShape: [5, 5, 2], filters: 3, kernelSize: 3, strides: 2, padding: 'same' }),
      tf.layers.conv2d({ filters: 2, kernelSize: 3, strides: 2 }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 3 }),
    ],
    input: () => tf.tensor(seeded(4 * 5 * 5 * 2, 44), [4, 5, 5, 2]),
    loss: softmaxLoss(3),
  },
  {
    name: 'embedding, lstm, gru, simpleRNN, layerNormalization',
    layers: () => [
      tf.layers.embedding({ inputShape: [7], inputDim: 20, outputDim: 8 }),
      tf.layers.lstm({ units: 6, returnSequences: true }),
      tf.layers.gru({ units: 5, returnSequences: true }),
      tf.layers.simpleRNN({ units: 4 }),
      tf.layers.layerNormalization(),
      tf.layers.dense({ units: 3 }),
    ],
    input: () => tf.tensor(Array.from({ length: 4 * 7 }, (_, i) => (i * 5) % 20), [4, 7], 'int32'),
    loss: softmaxLoss(3),
  },
  {
    name: 'dense with elu, selu, leakyReLU, relu6, sigmoid, tanh, softmax; categorical crossentropy',
    layers: () => [
      tf.layers.dense({ inputShape: [10], units: 8, activation: 'elu' }),
      tf.layers.dense({ units: 8, activation: 'selu' }),
      tf.layers.leakyReLU({ alpha: 0.2 }),
      tf.layers.dense({ units: 8, activation: 'relu6' }),
      tf.layers.dense({ units: 8, activation: 'sigmoid' }),
      tf.layers.dense({ units: 8, activation: 'tanh' }),
      tf.layers.dense({ units: 4, activation: 'softmax' }),
    ],
    input: () => tf.tensor(seeded(6 * 10, 45), [6, 10]),
    loss: (out) => tf.mean(tf.metrics.categoricalCrossentropy(classes(6, 4), out)) as tf.Scalar,
  },
];

/** Same weights on every backend: seeded per weight, positive where a layer needs it. */
function deterministicWeights(model: tf.LayersModel): void {
  model.setWeights(model.weights.map((w, i) => {
    const shape = w.shape.map((d) => {
      if (d === null) throw new Error(`weight ${w.name} has an unknown dimension`);
      return d;
    });
    const v = seeded(sizeOf(shape), 100 + i);
    const values = w.name.includes('variance') || w.name.includes('gamma')
      ? v.map((x) => 1 + 0.1 * x)
      : v.map((x) => 0.4 * x);
    return tf.tensor(values, shape);
  }));
}

function buildModel(c: ModelCase): tf.LayersModel {
  const model = tf.sequential({ layers: c.layers() });
  tf.tidy(() => deterministicWeights(model));
  return model;
}

function gradientStep(c: ModelCase, model: tf.LayersModel): Float32Array[] {
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  return tf.tidy(() => {
    const { value, grads } = tf.variableGrads(
      () => c.loss(model.apply(c.input(), { training: true }) as tf.Tensor), vars);
    value.dispose();
    return vars.map((v) => {
      const g = grads[v.name];
      assert.ok(g !== undefined, `no gradient for ${v.name}`);
      return Float32Array.from(g.dataSync());
    });
  });
}

async function gradientsOn(backend: 'cpu' | 'wasm', c: ModelCase): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  const model = buildModel(c);
  try {
    return gradientStep(c, model);
  } finally {
    model.dispose();
  }
}

describe('training step gradients on wasm vs cpu', () => {
  before(setUpBackends);

  for (const c of models) {
    test(c.name, async (t) => {
      const cpu = await gradientsOn('cpu', c);
      const wasm = await gradientsOn('wasm', c);
      assert.equal(wasm.length, cpu.length);
      // Scale: a variable's largest gradient entry, but at least 10% of the model's largest, so a
      // variable whose true gradient is ~0 (a bias right before batch norm: pure rounding noise on
      // both backends) is held to the model-wide scale rather than to its own noise.
      const scaleOf = (g: Float32Array) => g.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      const globalScale = Math.max(...cpu.map(scaleOf));
      assert.ok(globalScale > 0, 'all cpu gradients are zero: the case tests nothing');
      let worst = 0;
      cpu.forEach((expected, i) => {
        const actual = wasm[i];
        assert.ok(actual !== undefined && actual.length === expected.length, `variable ${i} shape`);
        let diff = 0;
        expected.forEach((e, j) => { diff = Math.max(diff, Math.abs(e - (actual[j] as number))); });
        const rel = diff / Math.max(scaleOf(expected), 0.1 * globalScale);
        worst = Math.max(worst, rel);
        assert.ok(rel < REL_TOLERANCE, `variable ${i}: relative error ${rel} (max abs ${diff})`);
      });
      t.diagnostic(`worst per-variable relative error ${worst.toExponential(2)}`);
    });
  }

  test('repeated gradient steps on wasm do not grow tensors or wasm buffers', async () => {
    await tf.setBackend('wasm');
    for (const c of models.slice(0, 2)) {
      const model = buildModel(c);
      try {
        gradientStep(c, model); // first step may allocate lasting state (optimizer-free, but be fair)
        const tensors = tf.memory().numTensors;
        const buffers = tf.engine().backend.numDataIds();
        for (let i = 0; i < 5; ++i) gradientStep(c, model);
        assert.equal(tf.memory().numTensors, tensors, `${c.name}: tensors grew`);
        assert.equal(tf.engine().backend.numDataIds(), buffers, `${c.name}: wasm buffers grew`);
      } finally {
        model.dispose();
      }
    }
  });
});
