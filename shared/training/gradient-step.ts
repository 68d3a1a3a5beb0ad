// One gradient computation over a shard: forward in training mode, loss, gradients of every
// trainable weight, read back as one packed Float32Array. Everything inside tf.tidy; the only
// tensors that outlive the call are disposed before it returns.

import { tf } from './tf.ts';
import type { LossName } from '../protocol/messages.ts';

export interface Batch {
  /** uint8 features, numSamples x featureShape. */
  readonly x: Uint8Array;
  /** uint8 class labels. */
  readonly y: Uint8Array;
  readonly numSamples: number;
}

export interface StepSpec {
  readonly loss: LossName;
  readonly numClasses: number;
  readonly featureShape: readonly number[];
  readonly featureScale: number;
}

export interface GradientResult {
  /** All trainable gradients laid end to end in model.trainableWeights order (the wire layout). */
  readonly gradients: Float32Array;
  readonly loss: number;
}

export function lossTensor(loss: LossName, yTrue: tf.Tensor, yPred: tf.Tensor): tf.Scalar {
  switch (loss) {
    case 'categoricalCrossentropy':
      // Keras semantics: yPred are probabilities (softmax output); clipped inside.
      return tf.mean(tf.metrics.categoricalCrossentropy(yTrue, yPred)) as tf.Scalar;
    case 'meanSquaredError':
      return tf.losses.meanSquaredError(yTrue, yPred) as tf.Scalar;
  }
}

/** Builds input tensors; caller disposes (or calls inside a tidy). */
export function batchTensors(spec: StepSpec, batch: Batch): { xs: tf.Tensor; ys: tf.Tensor } {
  const n = batch.numSamples;
  const features = new Float32Array(batch.x.length);
  const s = spec.featureScale;
  for (let i = 0; i < features.length; i++) features[i] = batch.x[i]! * s;
  const xs = tf.tensor(features, [n, ...spec.featureShape], 'float32');
  const ys = tf.tidy(() => tf.oneHot(tf.tensor1d(Int32Array.from(batch.y), 'int32'), spec.numClasses).toFloat());
  return { xs, ys };
}

export async function computeGradients(model: tf.LayersModel, spec: StepSpec, batch: Batch): Promise<GradientResult> {
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const [lossT, flat] = tf.tidy(() => {
    const { xs, ys } = batchTensors(spec, batch);
    const { value, grads } = tf.variableGrads(() => {
      const out = model.apply(xs, { training: true }) as tf.Tensor;
      return lossTensor(spec.loss, ys, out);
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
