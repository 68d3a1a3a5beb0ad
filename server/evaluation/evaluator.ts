// Held-out evaluation: test loss and the task's metrics (accuracy for classification; MAE and RMSE
// for regression) of a weight snapshot, on the coordinator's tfjs (WASM in Node). Runs on its own
// copy of the model, reading the test rows in chunks that yield to the event loop, so training
// goes on while it runs and the result belongs to exactly one version.

import { tf } from '../../shared/training/tf.ts';
import { buildModel, setWeightsFromPacked } from '../../shared/training/model.ts';
import { batchTensors, lossTensor, type StepSpec } from '../../shared/training/gradient-step.ts';
import type { TensorSpec } from '../../shared/codec/tensor-codec.ts';
import type { JobData } from '../data/job-data.ts';

export interface EvalResult {
  readonly version: number;
  readonly testLoss: number;
  /** Classification only (null for regression). */
  readonly testAccuracy: number | null;
  /** Regression only (null for classification): mean absolute error over every target value. */
  readonly testMae: number | null;
  /** Regression only: root mean squared error over every target value. */
  readonly testRmse: number | null;
  readonly at: number;
  readonly ms: number;
}

const yieldToLoop = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Sums of one chunk: loss x n, hits (classification), |err| and err^2 sums (regression). */
export function chunkSums(spec: StepSpec, ys: tf.Tensor, out: tf.Tensor, n: number): { loss: number; hits: number; abs: number; sq: number } {
  return tf.tidy(() => {
    const loss = lossTensor(spec, ys, out).mul(n).dataSync()[0]!;
    if (spec.data.target.kind === 'regression') {
      const err = tf.sub(out.reshape(ys.shape), ys);
      return { loss, hits: 0, abs: tf.sum(tf.abs(err)).dataSync()[0]!, sq: tf.sum(tf.square(err)).dataSync()[0]! };
    }
    let hits: number;
    if (spec.loss === 'binaryCrossentropy') {
      const threshold = spec.fromLogits ? 0 : 0.5;
      hits = tf.equal(tf.greater(out.reshape([-1]), threshold).toFloat(), ys.reshape([-1])).sum().dataSync()[0]!;
    } else {
      hits = tf.equal(out.argMax(-1), ys.argMax(-1)).sum().dataSync()[0]!;
    }
    return { loss, hits, abs: 0, sq: 0 };
  });
}

export class Evaluator {
  private model: tf.LayersModel | null = null;
  constructor(
    private readonly topology: unknown,
    private readonly spec: StepSpec,
    private readonly data: JobData,
    private readonly chunk = 1000,
  ) {}

  async evaluate(version: number, specs: readonly TensorSpec[], weights: Float32Array, now: () => number): Promise<EvalResult> {
    const t0 = now();
    this.model ??= await buildModel(this.topology);
    setWeightsFromPacked(this.model, specs, weights);
    let lossSum = 0;
    let hits = 0;
    let abs = 0;
    let sq = 0;
    const n = this.data.count('test');
    for (let start = 0; start < n; start += this.chunk) {
      const end = Math.min(n, start + this.chunk);
      const rows = this.data.read('test', start, end);
      const s = tf.tidy(() => {
        const { xs, ys } = batchTensors(this.spec, { x: rows.x, y: rows.y, numSamples: rows.count });
        return chunkSums(this.spec, ys, this.model!.predict(xs) as tf.Tensor, rows.count);
      });
      lossSum += s.loss;
      hits += s.hits;
      abs += s.abs;
      sq += s.sq;
      await yieldToLoop();
    }
    const t = this.spec.data.target;
    const values = t.kind === 'regression' ? n * t.outputs : 0;
    return {
      version,
      testLoss: lossSum / n,
      testAccuracy: t.kind === 'classes' ? hits / n : null,
      testMae: values > 0 ? abs / values : null,
      testRmse: values > 0 ? Math.sqrt(sq / values) : null,
      at: now(),
      ms: now() - t0,
    };
  }

  dispose(): void {
    this.model?.dispose();
    this.model = null;
  }
}
