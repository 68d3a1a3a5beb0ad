// Gradient-step probe: how many samples/s this backend computes gradients for a given model,
// on synthetic data, excluding the network. Used to pick a backend and as the benchmark's
// "isolated" figure (pipeline efficiency = end-to-end / isolated).

import { tf } from './tf.ts';
import { buildModel } from './model.ts';
import { computeGradients, type StepSpec } from './gradient-step.ts';

export interface ProbeOptions {
  readonly batchSize: number;
  /** Measure for about this long after warm-up (shader compilation, first allocation). */
  readonly budgetMs: number;
  readonly warmupSteps?: number;
  readonly now?: () => number;
}

export interface ProbeFigures {
  readonly backend: string;
  readonly samplesPerSec: number;
  readonly steps: number;
  readonly warmupMs: number;
}

export async function probeGradientStep(topology: unknown, spec: StepSpec, opts: ProbeOptions): Promise<ProbeFigures> {
  const now = opts.now ?? (() => performance.now());
  const model = await buildModel(topology);
  try {
    const row = spec.featureShape.reduce((a, b) => a * b, 1);
    const x = new Uint8Array(opts.batchSize * row);
    const y = new Uint8Array(opts.batchSize);
    for (let i = 0; i < x.length; i++) x[i] = (i * 2654435761) >>> 24;
    for (let i = 0; i < y.length; i++) y[i] = i % spec.numClasses;
    const batch = { x, y, numSamples: opts.batchSize };
    const w0 = now();
    for (let i = 0; i < (opts.warmupSteps ?? 2); i++) await computeGradients(model, spec, batch);
    const warmupMs = now() - w0;
    const t0 = now();
    let steps = 0;
    while (now() - t0 < opts.budgetMs || steps < 2) {
      await computeGradients(model, spec, batch);
      steps++;
    }
    const ms = now() - t0;
    return { backend: tf.getBackend(), samplesPerSec: (steps * opts.batchSize * 1000) / ms, steps, warmupMs };
  } finally {
    model.dispose();
  }
}
