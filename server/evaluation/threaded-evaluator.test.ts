// The evaluation thread gives the in-process evaluator's figures on the same weights, and the event
// loop stays free while it runs (the in-process one holds it for whole chunks).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Evaluator } from './evaluator.ts';
import { ThreadedEvaluator } from './threaded-evaluator.ts';
import { loadMnist, sliceDataset } from '../data/dataset.ts';
import { memoryJobData } from '../data/job-data.ts';
import { demoConfig } from '../jobs/demos.ts';
import { buildModel, packWeights } from '../../shared/training/model.ts';
import { initNodeBackend } from '../../shared/training/node-backend.ts';

async function maxLoopGapDuring<T>(work: () => Promise<T>): Promise<{ value: T; gapMs: number }> {
  let last = performance.now();
  let gap = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    gap = Math.max(gap, now - last);
    last = now;
  }, 1);
  try {
    return { value: await work(), gapMs: gap };
  } finally {
    clearInterval(timer);
  }
}

test('threaded evaluation: same accuracy and loss as in process; the event loop is not held', async () => {
  await initNodeBackend('wasm');
  const data = memoryJobData(sliceDataset(await loadMnist(), 100, 3000));
  const cfg = demoConfig('mnist-cnn');
  const model = await buildModel(cfg.modelTopology);
  const { specs, data: weights } = await packWeights(model);
  model.dispose();
  const spec = { loss: cfg.loss, fromLogits: cfg.fromLogits, data: data.spec };
  const local = new Evaluator(cfg.modelTopology, spec, data);
  const threaded = new ThreadedEvaluator(cfg.modelTopology, spec, data, (why) => assert.fail(`no thread: ${why}`));
  try {
    await threaded.evaluate(0, specs, weights, () => Date.now()); // thread start and tfjs init
    const a = await maxLoopGapDuring(() => local.evaluate(1, specs, weights, () => Date.now()));
    const b = await maxLoopGapDuring(() => threaded.evaluate(1, specs, weights, () => Date.now()));
    assert.equal(b.value.testAccuracy, a.value.testAccuracy);
    assert.ok(Math.abs(b.value.testLoss - a.value.testLoss) < 1e-6, `${b.value.testLoss} vs ${a.value.testLoss}`);
    assert.equal(b.value.version, 1);
    // In process, a 1,000-row CNN chunk holds the loop for tens of ms; the thread leaves it free.
    assert.ok(b.gapMs < a.gapMs / 2, `longest event-loop stall: thread ${b.gapMs.toFixed(1)} ms, in process ${a.gapMs.toFixed(1)} ms`);
    assert.ok(b.gapMs < 50, `event loop held ${b.gapMs.toFixed(1)} ms during a threaded evaluation`);
  } finally {
    local.dispose();
    threaded.dispose();
  }
});
