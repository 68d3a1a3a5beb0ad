// One gradient computation over a shard: forward in training mode, loss, gradients of every
// trainable weight, read back as one packed Float32Array. Everything inside tf.tidy; the only
// tensors that outlive the call are disposed before it returns. Rows arrive as the bytes a lease
// carries (shared/data/data-spec.ts): features uint8 or float32 times a scale; targets class
// indices or float32 regression values.

import { tf } from './tf.ts';
import type { LossName } from '../protocol/messages.ts';
import { featureCount, featureRowBytes, targetRowBytes, type DataSpec } from '../data/data-spec.ts';

export interface Batch {
  /** Feature rows, numSamples x featureShape, in spec.features.dtype. */
  readonly x: Uint8Array;
  /** Target rows (class indices or float32 values, see DataSpec.target). */
  readonly y: Uint8Array;
  readonly numSamples: number;
}

export interface StepSpec {
  readonly loss: LossName;
  /** The model's output is logits (no softmax/sigmoid): cross-entropy is taken from logits. */
  readonly fromLogits?: boolean | undefined;
  readonly data: DataSpec;
}

export interface GradientResult {
  /** All trainable gradients laid end to end in model.trainableWeights order (the wire layout). */
  readonly gradients: Float32Array;
  readonly loss: number;
}

/** The built-in MNIST demos' step: 28x28x1 uint8 pixels scaled by 1/255, 10 classes, softmax output. */
export const MNIST_STEP: StepSpec = {
  loss: 'categoricalCrossentropy',
  data: { featureShape: [28, 28, 1], features: { dtype: 'uint8', scale: 1 / 255 }, target: { kind: 'classes', numClasses: 10, dtype: 'uint8' } },
};

export function lossTensor(spec: Pick<StepSpec, 'loss' | 'fromLogits'>, yTrue: tf.Tensor, yPred: tf.Tensor): tf.Scalar {
  switch (spec.loss) {
    case 'categoricalCrossentropy':
      // Keras semantics: yPred are probabilities (softmax output, clipped inside) unless from logits.
      return (spec.fromLogits ? tf.losses.softmaxCrossEntropy(yTrue, yPred) : tf.mean(tf.metrics.categoricalCrossentropy(yTrue, yPred))) as tf.Scalar;
    case 'binaryCrossentropy':
      return (spec.fromLogits ? tf.losses.sigmoidCrossEntropy(yTrue, yPred) : tf.mean(tf.metrics.binaryCrossentropy(yTrue, yPred))) as tf.Scalar;
    case 'meanSquaredError':
      return tf.losses.meanSquaredError(yTrue, yPred) as tf.Scalar;
    case 'meanAbsoluteError':
      return tf.losses.absoluteDifference(yTrue, yPred) as tf.Scalar;
    case 'huber':
      return tf.losses.huberLoss(yTrue, yPred) as tf.Scalar;
  }
}

/** A float32 view of little-endian float32 bytes (copied once when unaligned). */
function floatsOf(bytes: Uint8Array): Float32Array {
  const b = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
}

/** Model inputs as float32: value on the wire times the feature scale. */
export function decodeFeatures(spec: DataSpec, x: Uint8Array, numSamples: number): Float32Array {
  const n = numSamples * featureCount(spec);
  const s = spec.features.scale;
  if (spec.features.dtype === 'float32') {
    const f = floatsOf(x).subarray(0, n);
    if (s === 1) return f;
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = f[i]! * s;
    return out;
  }
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = x[i]! * s;
  return out;
}

/** Class index per example (classification targets). */
export function decodeClasses(spec: DataSpec, y: Uint8Array, numSamples: number): Int32Array {
  if (spec.target.kind !== 'classes') throw new Error('not a classification target');
  if (spec.target.dtype === 'uint8') return Int32Array.from(y.subarray(0, numSamples));
  const b = y.byteOffset % 4 === 0 ? y : y.slice();
  return new Int32Array(b.buffer, b.byteOffset, numSamples);
}

/** Builds input and target tensors; caller disposes (or calls inside a tidy). */
export function batchTensors(spec: StepSpec, batch: Batch): { xs: tf.Tensor; ys: tf.Tensor } {
  const n = batch.numSamples;
  const d = spec.data;
  const xBytes = n * featureRowBytes(d);
  const yBytes = n * targetRowBytes(d.target);
  if (batch.x.byteLength !== xBytes || batch.y.byteLength !== yBytes) {
    throw new Error(`a batch of ${n} examples needs ${xBytes} bytes of features and ${yBytes} of targets; got ${batch.x.byteLength} and ${batch.y.byteLength}`);
  }
  const xs = tf.tensor(decodeFeatures(d, batch.x, n), [n, ...d.featureShape], 'float32');
  if (d.target.kind === 'regression') {
    return { xs, ys: tf.tensor2d(floatsOf(batch.y).subarray(0, n * d.target.outputs), [n, d.target.outputs], 'float32') };
  }
  const classes = decodeClasses(d, batch.y, n);
  const numClasses = d.target.numClasses;
  const ys = tf.tidy(() =>
    spec.loss === 'binaryCrossentropy'
      ? tf.tensor2d(Float32Array.from(classes), [n, 1], 'float32')
      : tf.oneHot(tf.tensor1d(classes, 'int32'), numClasses).toFloat(),
  );
  return { xs, ys };
}

export async function computeGradients(model: tf.LayersModel, spec: StepSpec, batch: Batch): Promise<GradientResult> {
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const [lossT, flat] = tf.tidy(() => {
    const { xs, ys } = batchTensors(spec, batch);
    const { value, grads } = tf.variableGrads(() => {
      const out = model.apply(xs, { training: true }) as tf.Tensor;
      return lossTensor(spec, ys, out);
    }, vars);
    const parts = vars.map((v) => {
      const g = grads[v.name];
      if (!g) throw new Error(`no gradient for ${v.name}`);
      return g.reshape([-1]);
    });
    return [value, tf.concat(parts)] as const;
  });
  try {
    const [l, g] = await Promise.all([lossT.data(), flat.data()]);
    return { loss: l[0]!, gradients: g as Float32Array };
  } finally {
    lossT.dispose();
    flat.dispose();
  }
}
