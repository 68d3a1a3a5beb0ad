// Built-in demo jobs on the real MNIST: an MLP (784-128-10) and a small CNN. Chosen at start-up
// with FLOCK_DEMO; the topology is produced by tfjs itself so it is exactly what tfjs loads.

import { tf } from '../../shared/training/tf.ts';
import type { JobConfig } from './job-config.ts';
import { DEFAULT_AGGREGATION } from '../aggregation/aggregation-config.ts';

export const DEMOS = ['mnist-mlp', 'mnist-cnn', 'mnist-mlp-large'] as const;
export type DemoName = (typeof DEMOS)[number];

function mlp(): tf.LayersModel {
  return tf.sequential({
    name: 'mnist_mlp',
    layers: [
      tf.layers.flatten({ inputShape: [28, 28, 1], name: 'flatten' }),
      tf.layers.dense({ units: 128, activation: 'relu', name: 'hidden' }),
      tf.layers.dense({ units: 10, activation: 'softmax', name: 'output' }),
    ],
  });
}

/** About 1.07M parameters (784-1024-256-10): the coordinator's hot path at a realistic size. */
function mlpLarge(): tf.LayersModel {
  return tf.sequential({
    name: 'mnist_mlp_large',
    layers: [
      tf.layers.flatten({ inputShape: [28, 28, 1], name: 'flatten' }),
      tf.layers.dense({ units: 1024, activation: 'relu', name: 'hidden1' }),
      tf.layers.dense({ units: 256, activation: 'relu', name: 'hidden2' }),
      tf.layers.dense({ units: 10, activation: 'softmax', name: 'output' }),
    ],
  });
}

function cnn(): tf.LayersModel {
  return tf.sequential({
    name: 'mnist_cnn',
    layers: [
      tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 8, kernelSize: 3, activation: 'relu', name: 'conv1' }),
      tf.layers.maxPooling2d({ poolSize: 2, name: 'pool1' }),
      tf.layers.conv2d({ filters: 16, kernelSize: 3, activation: 'relu', name: 'conv2' }),
      tf.layers.maxPooling2d({ poolSize: 2, name: 'pool2' }),
      tf.layers.flatten({ name: 'flatten' }),
      tf.layers.dense({ units: 10, activation: 'softmax', name: 'output' }),
    ],
  });
}

/** The demo's config; its topology comes from building the model once (then disposed). */
export function demoConfig(name: DemoName, overrides: Partial<JobConfig> = {}): JobConfig {
  const model = name === 'mnist-cnn' ? cnn() : name === 'mnist-mlp-large' ? mlpLarge() : mlp();
  const modelTopology = model.toJSON(null, false) as unknown as Record<string, unknown>;
  model.dispose();
  // What both demos share; each then sets its own name, learning rate, batch and cadence.
  const common = {
    dataset: 'mnist',
    task: 'classification',
    modelTopology,
    loss: 'categoricalCrossentropy',
    fromLogits: false,
    staleness: { rule: 'inverse-sqrt', maxStaleness: 32 },
    stop: { maxEpochs: 10, targetAccuracy: null },
    maxGradNorm: 1000,
    seed: 42,
    // Anyone can open the volunteer URL: robust buffered aggregation (plain async is an opt-in).
    aggregation: DEFAULT_AGGREGATION,
  } as const satisfies Partial<JobConfig>;
  const base: JobConfig =
    name === 'mnist-cnn'
      ? {
          ...common,
          name: 'MNIST CNN',
          description: 'Teach a small convolutional network to read handwritten digits (MNIST, 60,000 images).',
          optimizer: { kind: 'adam', learningRate: 0.002 },
          batchSize: 64,
          evalEveryVersions: 100,
          leaseTimeoutMs: 30_000,
        }
      : name === 'mnist-mlp-large'
        ? {
            ...common,
            name: 'MNIST MLP (large)',
            description: 'A bigger network (784-1024-256-10, about 1.07M parameters) on handwritten digits (MNIST): 4.3 MB of weights per version.',
            optimizer: { kind: 'adam', learningRate: 0.001 },
            batchSize: 128,
            evalEveryVersions: 50,
            leaseTimeoutMs: 30_000,
          }
        : {
          ...common,
          name: 'MNIST MLP',
          description: 'Teach a small neural network (784-128-10) to read handwritten digits (MNIST, 60,000 images).',
          optimizer: { kind: 'adam', learningRate: 0.003 },
          batchSize: 128,
          evalEveryVersions: 50,
          leaseTimeoutMs: 20_000,
        };
  return { ...base, ...overrides };
}
