// `local` aggregation on the worker (DiLoCo, Douillard et al. 2023): H optimizer steps over the
// lease's shard, one minibatch each, with the job's inner optimizer; returns the pseudo-gradient
// (weights before minus weights after) in the wire layout of a gradient, and puts the model's
// weights back, so the worker's cached version still describes them. Isomorphic (tab and Node).

import { tf } from './tf.ts';
import { batchTensors, lossTensor, type Batch, type GradientResult, type StepSpec } from './gradient-step.ts';
import { featureRowBytes, targetRowBytes } from '../data/data-spec.ts';
import type { InnerOptimizer, LocalSteps } from '../protocol/messages.ts';

function innerOptimizer(o: InnerOptimizer): tf.Optimizer {
  if (o.kind === 'adam') return tf.train.adam(o.learningRate, o.beta1 ?? 0.9, o.beta2 ?? 0.999, o.epsilon ?? 1e-7);
  const mu = o.momentum ?? 0;
  return mu > 0 ? tf.train.momentum(o.learningRate, mu, o.nesterov ?? false) : tf.train.sgd(o.learningRate);
}

function flatWeights(vars: readonly tf.Variable[]): tf.Tensor1D {
  return tf.tidy(() => tf.concat(vars.map((v) => v.reshape([-1]))) as tf.Tensor1D);
}

/** Minibatch `i` of a shard: rows [i*b, min(n, (i+1)*b)). */
export function minibatch(spec: StepSpec, batch: Batch, i: number, b: number): Batch {
  const from = i * b;
  const to = Math.min(batch.numSamples, from + b);
  const xr = featureRowBytes(spec.data);
  const yr = targetRowBytes(spec.data.target);
  return { x: batch.x.subarray(from * xr, to * xr), y: batch.y.subarray(from * yr, to * yr), numSamples: to - from };
}

export async function computeLocalUpdate(model: tf.LayersModel, spec: StepSpec, batch: Batch, local: LocalSteps): Promise<GradientResult> {
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const before = flatWeights(vars);
  const saved = vars.map((v) => v.clone());
  const opt = innerOptimizer(local.optimizer);
  const steps = Math.min(local.steps, Math.ceil(batch.numSamples / local.batchSize));
  let lossSum = 0;
  try {
    for (let i = 0; i < steps; i++) {
      const mb = minibatch(spec, batch, i, local.batchSize);
      const cost = opt.minimize(
        () =>
          tf.tidy(() => {
            const { xs, ys } = batchTensors(spec, mb);
            return lossTensor(spec, ys, model.apply(xs, { training: true }) as tf.Tensor);
          }),
        true,
        vars,
      );
      if (cost) {
        lossSum += (await cost.data())[0]!;
        cost.dispose();
      }
    }
    const delta = tf.tidy(() => before.sub(flatWeights(vars)));
    const data = (await delta.data()) as Float32Array;
    delta.dispose();
    return { gradients: data, loss: lossSum / Math.max(1, steps) };
  } finally {
    vars.forEach((v, i) => v.assign(saved[i]!));
    saved.forEach((t) => t.dispose());
    before.dispose();
    opt.dispose();
  }
}
