// Held-out evaluation: test loss and accuracy of a weight snapshot, on the coordinator's tfjs
// (WASM in Node). Runs on its own copy of the model, in chunks that yield to the event loop, so
// training goes on while it runs and the result belongs to exactly one version.

import { tf } from '../../shared/training/tf.ts';
import { buildModel, setWeightsFromPacked } from '../../shared/training/model.ts';
import { batchTensors, lossTensor } from '../../shared/training/gradient-step.ts';
import type { TensorSpec } from '../../shared/codec/tensor-codec.ts';
import type { LossName } from '../../shared/protocol/messages.ts';
import type { Split } from '../data/dataset.ts';

export interface EvalResult {
  readonly version: number;
  readonly testLoss: number;
  readonly testAccuracy: number;
  readonly at: number;
  readonly ms: number;
}

export interface EvalSpec {
  readonly loss: LossName;
  readonly numClasses: number;
  readonly featureShape: readonly number[];
  readonly featureScale: number;
}

const yieldToLoop = (): Promise<void> => new Promise((r) => setImmediate(r));

export class Evaluator {
  private model: tf.LayersModel | null = null;
  constructor(
    private readonly topology: unknown,
    private readonly spec: EvalSpec,
    private readonly test: Split,
    private readonly chunk = 1000,
  ) {}

  async evaluate(version: number, specs: readonly TensorSpec[], weights: Float32Array, now: () => number): Promise<EvalResult> {
    const t0 = now();
    this.model ??= await buildModel(this.topology);
    setWeightsFromPacked(this.model, specs, weights);
    const row = this.spec.featureShape.reduce((a, b) => a * b, 1);
    let lossSum = 0;
    let correct = 0;
    const n = this.test.count;
    for (let start = 0; start < n; start += this.chunk) {
      const end = Math.min(n, start + this.chunk);
      const batch = { x: this.test.x.subarray(start * row, end * row), y: this.test.y.subarray(start, end), numSamples: end - start };
      const [l, c] = tf.tidy(() => {
        const { xs, ys } = batchTensors(this.spec, batch);
        const out = this.model!.predict(xs) as tf.Tensor;
        const loss = lossTensor(this.spec.loss, ys, out).mul(end - start);
        const hits = tf.equal(out.argMax(-1), ys.argMax(-1)).sum();
        return [loss.dataSync()[0]!, hits.dataSync()[0]!];
      });
      lossSum += l;
      correct += c;
      await yieldToLoop();
    }
    return { version, testLoss: lossSum / n, testAccuracy: correct / n, at: now(), ms: now() - t0 };
  }

  dispose(): void {
    this.model?.dispose();
    this.model = null;
  }
}
