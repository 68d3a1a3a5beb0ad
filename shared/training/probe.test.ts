// The start-up probe in Node (wasm and cpu): it measures each candidate within its slice, reports a
// missing kernel or non-finite gradients as a failure, gives up on a step that cannot finish in
// time, and leaks no tensors.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { tf } from './tf.ts';
import { initNodeBackend } from './node-backend.ts';
import { probeBackend, probeBackends } from './probe.ts';
import { decideBackend } from './backend-choice.ts';
import type { BackendName } from '../protocol/messages.ts';
import type { StepSpec } from './gradient-step.ts';

const spec: StepSpec = { loss: 'categoricalCrossentropy', data: { featureShape: [8, 8, 1], features: { dtype: 'uint8', scale: 1 / 255 }, target: { kind: 'classes', numClasses: 3, dtype: 'uint8' } } };
const useBackend = async (name: BackendName): Promise<boolean> => (name === 'wasm' || name === 'cpu') && tf.setBackend(name);

function topology(layers: () => tf.layers.Layer[]): unknown {
  const m = tf.sequential({ layers: layers() });
  const t = m.toJSON(null, false);
  m.dispose();
  return t;
}
const cnn = () => topology(() => [
  tf.layers.conv2d({ inputShape: [8, 8, 1], filters: 4, kernelSize: 3, activation: 'relu' }),
  tf.layers.flatten(),
  tf.layers.dense({ units: 3, activation: 'softmax' }),
]);
/** Every weight 1e38: the logits overflow to Infinity, so the loss and every gradient are NaN. */
const overflowing = () => topology(() => [
  tf.layers.flatten({ inputShape: [8, 8, 1] }),
  tf.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: tf.initializers.constant({ value: 1e38 }) }),
]);

before(async () => {
  await initNodeBackend('wasm');
});

test('wasm and cpu are measured within the budget and wasm wins', async () => {
  const tensors = tf.memory().numTensors;
  const t0 = performance.now();
  const outcomes = await probeBackends([{ backend: 'wasm', software: false }, { backend: 'cpu', software: false }], cnn(), spec, { batchSize: 16, budgetMs: 800, useBackend });
  const ms = performance.now() - t0;
  assert.ok(ms < 1500, `took ${ms} ms`);
  for (const o of outcomes) {
    assert.equal(o.status, 'ok', `${o.backend}: ${o.error}`);
    assert.ok(o.samplesPerSec > 0 && o.steps >= 1);
  }
  const d = decideBackend(outcomes);
  assert.ok(d.ok);
  assert.equal(d.backend, 'wasm');
  await new Promise((r) => setTimeout(r, 10)); // models are disposed once their last step settles
  assert.equal(tf.memory().numTensors, tensors, 'the probe leaked tensors');
});

test('a missing gradient kernel fails that backend, naming the kernel; the other is kept', async () => {
  const kernel = tf.getKernel('Conv2DBackpropFilter', 'wasm');
  assert.ok(kernel);
  tf.unregisterKernel('Conv2DBackpropFilter', 'wasm');
  try {
    const outcomes = await probeBackends([{ backend: 'wasm', software: false }, { backend: 'cpu', software: false }], cnn(), spec, { batchSize: 8, budgetMs: 600, useBackend });
    assert.equal(outcomes[0]?.status, 'failed');
    assert.match(outcomes[0]?.error ?? '', /Conv2DBackpropFilter/);
    const d = decideBackend(outcomes);
    assert.ok(d.ok && d.backend === 'cpu');
  } finally {
    tf.registerKernel(kernel);
    await tf.setBackend('wasm');
  }
});

test('non-finite gradients on the probe step: the model cannot be trained here', async () => {
  const outcomes = await probeBackends([{ backend: 'wasm', software: false }, { backend: 'cpu', software: false }], overflowing(), spec, { batchSize: 8, budgetMs: 400, useBackend });
  assert.deepEqual(outcomes.map((o) => o.status), ['failed', 'failed']);
  assert.match(outcomes[0]?.error ?? '', /non-finite/);
  const d = decideBackend(outcomes);
  assert.equal(d.ok, false);
  await tf.setBackend('wasm');
});

test('a backend that cannot start fails; a step slower than the slice is a timeout, not waited for', async () => {
  const now = () => performance.now();
  const notHere = await probeBackend({ backend: 'webgpu', software: false }, cnn(), spec, { batchSize: 8, deadlineAt: now() + 200, measureMs: 100, useBackend, now });
  assert.equal(notHere.status, 'failed');
  assert.match(notHere.error ?? '', /did not start/);
  // Every step takes 300 ms (like a GPU compiling shaders) and the slice is 100 ms.
  const t0 = now();
  const slow = await probeBackend({ backend: 'wasm', software: false }, cnn(), spec, {
    batchSize: 8, deadlineAt: t0 + 100, measureMs: 50, useBackend, now, beforeStep: () => new Promise((r) => setTimeout(r, 300)),
  });
  const waited = now() - t0;
  assert.equal(slow.status, 'timeout');
  assert.ok(waited < 250, `the probe waited ${waited} ms for a step it had given up on`);
  // One batch over the ~100 ms waited (not over the 300 ms the step really takes).
  assert.ok(slow.samplesPerSec > (8 * 1000) / 250 && slow.samplesPerSec < (8 * 1000) / 50, `figure ${slow.samplesPerSec}`);
  await new Promise((r) => setTimeout(r, 400)); // the abandoned step settles and frees its model
});
