import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { tf } from '../../shared/training/tf.ts';
import { initNodeBackend } from '../../shared/training/node-backend.ts';
import { decideLoss, JobFileError, loadModelFile, parseJobFile } from './job-file.ts';
import { saveModel } from './testing/own-data.ts';

before(async () => {
  await initNodeBackend('wasm');
});

test('decideLoss: output layer and task pick the loss, mismatches are refused with the key at fault', () => {
  assert.deepEqual(decideLoss('classification', 3, 'softmax'), { loss: 'categoricalCrossentropy', fromLogits: false, binary: false });
  assert.deepEqual(decideLoss('classification', 3, 'linear'), { loss: 'categoricalCrossentropy', fromLogits: true, binary: false });
  assert.deepEqual(decideLoss('classification', 1, 'sigmoid'), { loss: 'binaryCrossentropy', fromLogits: false, binary: true });
  assert.deepEqual(decideLoss('classification', 1, 'linear'), { loss: 'binaryCrossentropy', fromLogits: true, binary: true });
  assert.deepEqual(decideLoss('regression', 2, 'linear'), { loss: 'meanSquaredError', fromLogits: false, binary: false });
  assert.equal(decideLoss('regression', 1, 'linear', 'mae').loss, 'meanAbsoluteError');
  assert.equal(decideLoss('regression', 1, 'linear', 'huber').loss, 'huber');
  assert.equal(decideLoss('classification', 10, 'softmax', 'sparseCategoricalCrossentropy').loss, 'categoricalCrossentropy');
  const refused = (f: () => unknown, field: string, re: RegExp): void => {
    assert.throws(f, (e: unknown) => e instanceof JobFileError && e.field === field && re.test(e.message));
  };
  refused(() => decideLoss('regression', 3, 'softmax'), 'task', /softmax.*regression/);
  refused(() => decideLoss('classification', 4, 'relu'), 'task', /4 units with relu/);
  refused(() => decideLoss('classification', 1, 'softmax'), 'task', /one unit/);
  refused(() => decideLoss('classification', 3, 'softmax', 'mse'), 'loss', /regression/);
  refused(() => decideLoss('regression', 1, 'linear', 'binaryCrossentropy'), 'loss', /classification/);
  refused(() => decideLoss('classification', 3, 'softmax', 'binaryCrossentropy'), 'loss', /one sigmoid/);
});

test('parseJobFile: defaults, and refusals that name the key', () => {
  const job = parseJobFile(JSON.stringify({ name: 'x', model: 'model.json', data: { train: 't.csv', label: 'y' }, task: 'regression' }));
  assert.equal(job.batchSize, 32);
  assert.deepEqual(job.optimizer, { kind: 'adam', learningRate: 0.001 });
  const refused = (text: string, re: RegExp, field?: string): void => {
    assert.throws(() => parseJobFile(text, 'job.json'), (e: unknown) => e instanceof JobFileError && re.test(e.message) && (field === undefined || e.field === field));
  };
  refused('{ "name": ', /job\.json is not valid JSON/);
  refused(JSON.stringify({ name: 'x', model: 'm.json', data: { train: 't.csv' }, task: 'clustering' }), /"task"/, 'task');
  refused(JSON.stringify({ name: 'x', model: 'm.json', data: { train: 't.csv' }, task: 'regression', batchSize: 0 }), /"batchSize"/, 'batchSize');
  refused(JSON.stringify({ name: 'x', model: 'm.json', data: { train: 't.csv' }, task: 'regression', epochs: 3 }), /unknown key "epochs"/);
  refused(JSON.stringify({ name: 'x', model: 'm.json', data: { train: 't.csv' }, task: 'regression', optimizer: { kind: 'rmsprop', learningRate: 0.1 } }), /"optimizer.kind"/);
  refused(JSON.stringify({ model: 'm.json', data: { train: 't.csv' }, task: 'regression' }), /"name"/, 'name');
});

test('loadModelFile: a model saved by tfjs, with and without weights; bad files refused in one sentence', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'flock-model-'));
  try {
    const m = tf.sequential({ layers: [tf.layers.dense({ inputShape: [5], units: 4, activation: 'relu' }), tf.layers.dense({ units: 2, activation: 'softmax' })] });
    const expected = await Promise.all(m.weights.map((w) => w.read().data()));
    await saveModel(m, path.join(dir, 'with'), true);
    await saveModel(m, path.join(dir, 'bare'), false);
    m.dispose();
    const w = await loadModelFile(path.join(dir, 'with', 'model.json'), 1 << 20);
    assert.deepEqual(w.inputShape, [5]);
    assert.equal(w.outputUnits, 2);
    assert.equal(w.outputActivation, 'softmax');
    assert.equal(w.params, 5 * 4 + 4 + 4 * 2 + 2);
    assert.deepEqual(Array.from(w.weights!), expected.flatMap((a) => Array.from(a)));
    const bare = await loadModelFile(path.join(dir, 'bare', 'model.json'), 1 << 20);
    assert.equal(bare.weights, null);

    const refused = async (file: string, re: RegExp): Promise<void> => {
      await assert.rejects(loadModelFile(file, 1 << 20), (e: unknown) => e instanceof JobFileError && e.field === 'model' && re.test(e.message) && !e.message.includes('\n'));
    };
    await refused(path.join(dir, 'nope.json'), /cannot be read/);
    await writeFile(path.join(dir, 'text.json'), 'hello');
    await refused(path.join(dir, 'text.json'), /not JSON/);
    const graph = JSON.parse(await readFile(path.join(dir, 'bare', 'model.json'), 'utf8')) as Record<string, unknown>;
    await writeFile(path.join(dir, 'graph.json'), JSON.stringify({ ...graph, format: 'graph-model' }));
    await refused(path.join(dir, 'graph.json'), /graph-model.*layers-model/);
    await rm(path.join(dir, 'with', 'weights.bin'));
    await refused(path.join(dir, 'with', 'model.json'), /weight file weights\.bin .* missing/);
    await assert.rejects(loadModelFile(path.join(dir, 'bare', 'model.json'), 10), /over the size limit/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
