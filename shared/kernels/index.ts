// Registers Flock's own tfjs kernels: gradients tfjs-backend-wasm 4.22 lacks, and replacements for
// native wasm kernels measured to be wrong. Called by whoever starts tfjs (Node server, Node worker,
// browser Web Worker) AFTER importing '@tensorflow/tfjs-backend-wasm'; isomorphic, idempotent.
// tfjs-backend-webgpu 4.22 needs none: it passes every case of the coverage matrix (./coverage/).
import * as tf from '@tensorflow/tfjs';
import { conv2DBackpropFilterConfig } from './wasm/conv2d-backprop-filter.ts';
import { depthwiseConv2dNativeBackpropFilterConfig } from './wasm/depthwise-conv2d-backprop-filter.ts';
import { depthwiseConv2dNativeBackpropInputConfig } from './wasm/depthwise-conv2d-backprop-input.ts';
import { maxPoolGradConfig } from './wasm/max-pool-grad.ts';
import { unsortedSegmentSumConfig } from './wasm/unsorted-segment-sum.ts';

/** Kernels the wasm backend does not have; registered only where the backend still lacks them. */
export const MISSING_WASM_KERNELS: readonly tf.KernelConfig[] = [
  conv2DBackpropFilterConfig,
  depthwiseConv2dNativeBackpropFilterConfig,
  depthwiseConv2dNativeBackpropInputConfig,
  unsortedSegmentSumConfig,
];

/**
 * Kernels the wasm backend has but gets wrong (see each file's header); these replace the native
 * ones. A test runs the native kernel too and fails once tfjs fixes it, so the entry can go.
 */
export const REPLACED_WASM_KERNELS: readonly tf.KernelConfig[] = [maxPoolGradConfig];

/** Native configs we replaced, kept so tests can check whether the replacement is still needed. */
const replacedNative = new Map<string, tf.KernelConfig>();

/** The native wasm kernel `registerFlockKernels` replaced under this name, if any. */
export function replacedNativeKernel(kernelName: string): tf.KernelConfig | undefined {
  return replacedNative.get(kernelName);
}

/**
 * Registers every Flock kernel once; later calls change nothing. Does nothing when the wasm
 * backend's kernels are not loaded in this bundle (a page that only imports webgpu), because a
 * replacement registered before '@tensorflow/tfjs-backend-wasm' loads would be overwritten by it.
 */
export function registerFlockKernels(): void {
  if (tf.getKernel('Conv2D', 'wasm') === undefined) return;
  for (const config of MISSING_WASM_KERNELS) {
    if (tf.getKernel(config.kernelName, config.backendName) === undefined) tf.registerKernel(config);
  }
  for (const config of REPLACED_WASM_KERNELS) {
    const current = tf.getKernel(config.kernelName, config.backendName);
    if (current === config) continue;
    if (current !== undefined) {
      replacedNative.set(config.kernelName, current);
      tf.unregisterKernel(config.kernelName, config.backendName);
    }
    tf.registerKernel(config);
  }
}
