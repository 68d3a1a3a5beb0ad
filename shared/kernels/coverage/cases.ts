// The gradient coverage matrix's cases: one small model per common layer, activation and loss, with
// seeded weights and inputs, so every backend computes the gradients of the same function. Pure
// definitions (no backend is chosen here); run.ts runs them, on cpu as the reference.
import * as tf from '@tensorflow/tfjs';
import { seeded, sizeOf } from './seeded.ts';

export type CaseGroup = 'layer' | 'activation' | 'loss';

export interface CoverageCase {
  readonly name: string;
  readonly group: CaseGroup;
  /** Builds the model on the current backend; run.ts then overwrites its weights (seeded). */
  build(): tf.LayersModel;
  /** The batch, made from plain numbers so every backend sees identical inputs. */
  input(): tf.Tensor | tf.Tensor[];
  /** Scalar training loss of the model's output. */
  loss(output: tf.Tensor): tf.Scalar;
}

const BATCH = 4;

/** One-hot targets for `classes` classes, fixed per row. */
function targets(classes: number, batch = BATCH): tf.Tensor {
  return tf.oneHot(tf.tensor1d(Array.from({ length: batch }, (_, i) => (i * 3 + 1) % classes), 'int32'), classes).toFloat();
}

const softmaxCE = (classes: number) => (out: tf.Tensor): tf.Scalar =>
  tf.losses.softmaxCrossEntropy(targets(classes, out.shape[0]), out) as tf.Scalar;

function images(shape: [number, number, number], seed: number, scale = 1): () => tf.Tensor {
  return () => tf.tensor(seeded(BATCH * sizeOf(shape), seed).map((v) => v * scale), [BATCH, ...shape]);
}

function seq(layers: () => tf.layers.Layer[]): () => tf.LayersModel {
  return () => tf.sequential({ layers: layers() });
}

/** `layer` on a small image, then flatten and a dense head, trained with softmax cross-entropy. */
function imageCase(name: string, inShape: [number, number, number], layer: (inputShape: number[]) => tf.layers.Layer[], seed: number): CoverageCase {
  return {
    name,
    group: 'layer',
    build: seq(() => [...layer(inShape), tf.layers.flatten(), tf.layers.dense({ units: 3 })]),
    input: images(inShape, seed),
    loss: softmaxCE(3),
  };
}

function conv2dCase(strides: 1 | 2, padding: 'same' | 'valid', useBias: boolean, seed: number): CoverageCase {
  return imageCase(
    `Conv2D strides ${strides} ${padding} ${useBias ? 'with' : 'without'} bias`,
    [7, 8, 3],
    (inputShape) => [tf.layers.conv2d({ inputShape, filters: 4, kernelSize: 3, strides, padding, useBias, activation: 'relu' })],
    seed,
  );
}

/** dense(8, activation) on inputs wide enough to reach every regime (relu6's cap, elu's tail). */
function activationCase(name: string, act: () => tf.layers.Layer[], seed: number): CoverageCase {
  return {
    name: `activation ${name}`,
    group: 'activation',
    build: seq(() => [tf.layers.dense({ inputShape: [10], units: 8 }), ...act(), tf.layers.dense({ units: 3 })]),
    input: () => tf.tensor(seeded(BATCH * 10, seed).map((v) => v * 8), [BATCH, 10]),
    loss: softmaxCE(3),
  };
}

const activation = (identifier: Parameters<typeof tf.layers.activation>[0]['activation']) => () =>
  [tf.layers.activation({ activation: identifier })];

/** Dense 10 -> `units` (optionally with an activation) and the loss under test. */
function lossCase(name: string, units: number, outActivation: 'linear' | 'softmax' | 'sigmoid', loss: (out: tf.Tensor) => tf.Scalar, seed: number): CoverageCase {
  return {
    name: `loss ${name}`,
    group: 'loss',
    build: seq(() => [tf.layers.dense({ inputShape: [10], units: 8, activation: 'tanh' }), tf.layers.dense({ units, activation: outActivation })]),
    input: () => tf.tensor(seeded(BATCH * 10, seed).map((v) => v * 2), [BATCH, 10]),
    loss,
  };
}

function sequenceIds(): tf.Tensor {
  return tf.tensor(Array.from({ length: BATCH * 6 }, (_, i) => (i * 7 + 3) % 20), [BATCH, 6], 'int32');
}

function recurrentCase(name: string, layer: () => tf.layers.Layer, seed: number): CoverageCase {
  return {
    name,
    group: 'layer',
    build: seq(() => [tf.layers.inputLayer({ inputShape: [5, 3] }), layer(), tf.layers.dense({ units: 3 })]),
    input: () => tf.tensor(seeded(BATCH * 5 * 3, seed), [BATCH, 5, 3]),
    loss: softmaxCE(3),
  };
}

/** Every common layer, activation and loss a job may train (tfjs 4.22 has gelu: it is included). */
export const COVERAGE_CASES: readonly CoverageCase[] = [
  {
    name: 'Dense',
    group: 'layer',
    build: seq(() => [tf.layers.dense({ inputShape: [12], units: 6 }), tf.layers.dense({ units: 3 })]),
    input: () => tf.tensor(seeded(BATCH * 12, 1), [BATCH, 12]),
    loss: softmaxCE(3),
  },
  conv2dCase(1, 'valid', true, 2),
  conv2dCase(1, 'valid', false, 3),
  conv2dCase(1, 'same', true, 4),
  conv2dCase(1, 'same', false, 5),
  conv2dCase(2, 'valid', true, 6),
  conv2dCase(2, 'valid', false, 7),
  conv2dCase(2, 'same', true, 8),
  conv2dCase(2, 'same', false, 9),
  {
    // The MNIST CNN demo's shape (conv8-pool-conv16-pool-dense10 on 28x28x1): the sizes where
    // backends switch to their im2col / tiled code paths.
    name: 'CNN at MNIST size (the mnist-cnn demo)',
    group: 'layer',
    build: seq(() => [
      tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 8, kernelSize: 3, activation: 'relu' }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.conv2d({ filters: 16, kernelSize: 3, activation: 'relu' }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 10, activation: 'softmax' }),
    ]),
    input: () => tf.tensor(seeded(8 * 28 * 28, 26).map((v) => Math.max(0, v)), [8, 28, 28, 1]),
    loss: (out) => tf.mean(tf.metrics.categoricalCrossentropy(targets(10, out.shape[0]), out)) as tf.Scalar,
  },
  {
    name: 'Conv1D strides 2',
    group: 'layer',
    build: seq(() => [tf.layers.conv1d({ inputShape: [12, 3], filters: 4, kernelSize: 3, strides: 2, activation: 'tanh' }), tf.layers.flatten(), tf.layers.dense({ units: 3 })]),
    input: () => tf.tensor(seeded(BATCH * 12 * 3, 27), [BATCH, 12, 3]),
    loss: softmaxCE(3),
  },
  imageCase('Conv2DTranspose strides 2 same', [4, 4, 2],
    (inputShape) => [tf.layers.conv2dTranspose({ inputShape, filters: 3, kernelSize: 3, strides: 2, padding: 'same' })], 28),
  imageCase('DepthwiseConv2D strides 1 same', [6, 6, 3],
    (inputShape) => [tf.layers.depthwiseConv2d({ inputShape, kernelSize: 3, depthMultiplier: 2, padding: 'same' })], 10),
  imageCase('DepthwiseConv2D strides 2 valid', [7, 7, 3],
    (inputShape) => [tf.layers.depthwiseConv2d({ inputShape, kernelSize: 3, strides: 2, padding: 'valid' })], 11),
  imageCase('SeparableConv2D', [7, 7, 3],
    (inputShape) => [tf.layers.separableConv2d({ inputShape, filters: 4, kernelSize: 3, depthMultiplier: 2, padding: 'same', strides: 2 })], 12),
  imageCase('MaxPooling2D valid', [6, 6, 2],
    (inputShape) => [tf.layers.conv2d({ inputShape, filters: 3, kernelSize: 1 }), tf.layers.maxPooling2d({ poolSize: 2 })], 13),
  imageCase('MaxPooling2D same, strides 2, odd size', [7, 7, 2],
    (inputShape) => [tf.layers.conv2d({ inputShape, filters: 3, kernelSize: 1, activation: 'relu' }), tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same' })], 14),
  imageCase('AveragePooling2D valid', [6, 6, 2],
    (inputShape) => [tf.layers.conv2d({ inputShape, filters: 3, kernelSize: 1 }), tf.layers.averagePooling2d({ poolSize: 2 })], 15),
  imageCase('AveragePooling2D same, odd size', [7, 7, 2],
    (inputShape) => [tf.layers.conv2d({ inputShape, filters: 3, kernelSize: 1 }), tf.layers.averagePooling2d({ poolSize: 3, strides: 2, padding: 'same' })], 16),
  {
    name: 'GlobalAveragePooling2D',
    group: 'layer',
    build: seq(() => [tf.layers.conv2d({ inputShape: [5, 5, 2], filters: 4, kernelSize: 3 }), tf.layers.globalAveragePooling2d({}), tf.layers.dense({ units: 3 })]),
    input: images([5, 5, 2], 17),
    loss: softmaxCE(3),
  },
  imageCase('BatchNormalization', [5, 5, 2],
    (inputShape) => [tf.layers.conv2d({ inputShape, filters: 4, kernelSize: 3 }), tf.layers.batchNormalization(), tf.layers.activation({ activation: 'relu' })], 18),
  {
    name: 'LayerNormalization',
    group: 'layer',
    build: seq(() => [tf.layers.dense({ inputShape: [10], units: 8 }), tf.layers.layerNormalization(), tf.layers.dense({ units: 3 })]),
    input: () => tf.tensor(seeded(BATCH * 10, 19), [BATCH, 10]),
    loss: softmaxCE(3),
  },
  {
    // Seeded: the mask comes from tf.randomUniform's JS generator, so it is the same on every backend.
    name: 'Dropout',
    group: 'layer',
    build: seq(() => [tf.layers.dense({ inputShape: [10], units: 16 }), tf.layers.dropout({ rate: 0.4, seed: 7 }), tf.layers.dense({ units: 3 })]),
    input: () => tf.tensor(seeded(BATCH * 10, 20), [BATCH, 10]),
    loss: softmaxCE(3),
  },
  {
    name: 'Flatten and Reshape',
    group: 'layer',
    build: seq(() => [tf.layers.reshape({ inputShape: [12], targetShape: [3, 4] }), tf.layers.dense({ units: 5 }), tf.layers.flatten(), tf.layers.dense({ units: 3 })]),
    input: () => tf.tensor(seeded(BATCH * 12, 21), [BATCH, 12]),
    loss: softmaxCE(3),
  },
  {
    name: 'Embedding (repeated ids)',
    group: 'layer',
    build: seq(() => [tf.layers.embedding({ inputShape: [6], inputDim: 20, outputDim: 5 }), tf.layers.flatten(), tf.layers.dense({ units: 3 })]),
    input: sequenceIds,
    loss: softmaxCE(3),
  },
  recurrentCase('SimpleRNN', () => tf.layers.simpleRNN({ units: 4 }), 22),
  recurrentCase('LSTM', () => tf.layers.lstm({ units: 4 }), 23),
  recurrentCase('GRU', () => tf.layers.gru({ units: 4 }), 24),
  {
    name: 'Concatenate and Add',
    group: 'layer',
    build: () => {
      const input = tf.input({ shape: [8] });
      const a = tf.layers.dense({ units: 5, activation: 'relu' }).apply(input) as tf.SymbolicTensor;
      const b = tf.layers.dense({ units: 5, activation: 'tanh' }).apply(input) as tf.SymbolicTensor;
      const sum = tf.layers.add().apply([a, b]) as tf.SymbolicTensor;
      const joined = tf.layers.concatenate().apply([sum, a, input]) as tf.SymbolicTensor;
      const out = tf.layers.dense({ units: 3 }).apply(joined) as tf.SymbolicTensor;
      return tf.model({ inputs: input, outputs: out });
    },
    input: () => tf.tensor(seeded(BATCH * 8, 25), [BATCH, 8]),
    loss: softmaxCE(3),
  },
  activationCase('relu', activation('relu'), 30),
  activationCase('relu6', activation('relu6'), 31),
  activationCase('elu', activation('elu'), 32),
  activationCase('selu', activation('selu'), 33),
  activationCase('gelu', activation('gelu'), 34),
  activationCase('sigmoid', activation('sigmoid'), 35),
  activationCase('tanh', activation('tanh'), 36),
  activationCase('softmax', activation('softmax'), 37),
  activationCase('leakyReLU', () => [tf.layers.leakyReLU({ alpha: 0.2 })], 38),
  lossCase('softmax cross-entropy', 4, 'linear', softmaxCE(4), 40),
  lossCase('sigmoid cross-entropy', 4, 'linear',
    (out) => tf.losses.sigmoidCrossEntropy(targets(4, out.shape[0]), out) as tf.Scalar, 41),
  lossCase('categorical cross-entropy', 4, 'softmax',
    (out) => tf.mean(tf.metrics.categoricalCrossentropy(targets(4, out.shape[0]), out)) as tf.Scalar, 42),
  lossCase('mean squared error', 4, 'sigmoid',
    (out) => tf.losses.meanSquaredError(targets(4, out.shape[0]), out) as tf.Scalar, 43),
];
