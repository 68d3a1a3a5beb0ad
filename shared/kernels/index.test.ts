// Checks registerFlockKernels: idempotent, leaves kernels the backend already has alone, replaces
// only the listed broken ones, and that nothing a training step needs is still missing on wasm.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import {
  MISSING_WASM_KERNELS, registerFlockKernels, REPLACED_WASM_KERNELS, replacedNativeKernel,
} from './index.ts';
import { setUpBackends } from './wasm/testing.ts';

/**
 * cpu kernels wasm still lacks after registration, none of which a layer's training step runs:
 * complex numbers and FFT, ragged tensors, strings, tf.browser.draw, and the forward op Einsum
 * (tf.einsum only; no public tfjs layer uses it).
 */
const NOT_NEEDED_FOR_TRAINING = [
  'Complex', 'ComplexAbs', 'Draw', 'Einsum', 'FFT', 'IFFT', 'Imag', 'RaggedGather', 'RaggedRange',
  'RaggedTensorToTensor', 'Real', 'StaticRegexReplace',
];

function wasmKernelNames(): string[] {
  return tf.getKernelsForBackend('wasm').map((k) => k.kernelName).sort();
}

describe('registerFlockKernels', () => {
  before(setUpBackends);

  test('registers every missing and replacement kernel on wasm', () => {
    for (const config of [...MISSING_WASM_KERNELS, ...REPLACED_WASM_KERNELS]) {
      assert.equal(tf.getKernel(config.kernelName, 'wasm'), config, config.kernelName);
    }
    assert.ok(replacedNativeKernel('MaxPoolGrad') !== undefined);
  });

  test('a second call changes nothing and warns about nothing', () => {
    const namesBefore = wasmKernelNames();
    const configsBefore = tf.getKernelsForBackend('wasm');
    const nativeBefore = replacedNativeKernel('MaxPoolGrad');
    const warnings: unknown[] = [];
    const originalWarn = console.warn;
    console.warn = (...args: unknown[]) => warnings.push(args);
    try {
      registerFlockKernels();
      registerFlockKernels();
    } finally {
      console.warn = originalWarn;
    }
    assert.deepEqual(warnings, []);
    assert.deepEqual(wasmKernelNames(), namesBefore);
    const configsAfter = tf.getKernelsForBackend('wasm');
    assert.equal(configsAfter.length, configsBefore.length);
    for (const config of configsBefore) assert.ok(configsAfter.includes(config), config.kernelName);
    assert.equal(replacedNativeKernel('MaxPoolGrad'), nativeBefore);
  });

  test('keeps a kernel the backend already has instead of overwriting it', () => {
    const ours = tf.getKernel('UnsortedSegmentSum', 'wasm');
    assert.ok(ours !== undefined);
    const theirs: tf.KernelConfig = { kernelName: 'UnsortedSegmentSum', backendName: 'wasm', kernelFunc: ours.kernelFunc };
    tf.unregisterKernel('UnsortedSegmentSum', 'wasm');
    tf.registerKernel(theirs);
    try {
      registerFlockKernels();
      assert.equal(tf.getKernel('UnsortedSegmentSum', 'wasm'), theirs);
    } finally {
      tf.unregisterKernel('UnsortedSegmentSum', 'wasm');
      tf.registerKernel(ours);
    }
  });

  test('after registration wasm lacks only kernels no training step uses', () => {
    const wasm = new Set(wasmKernelNames());
    const missing = tf.getKernelsForBackend('cpu').map((k) => k.kernelName).filter((n) => !wasm.has(n)).sort();
    assert.deepEqual(missing, NOT_NEEDED_FOR_TRAINING);
  });
});
