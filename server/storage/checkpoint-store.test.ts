import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, readdir, readFile, rm, writeFile, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CheckpointStore, type CheckpointData } from './checkpoint-store.ts';
import { encodeCheckpoint } from './checkpoint-encoding.ts';
import { tf } from '../../shared/training/tf.ts';
import { initNodeBackend } from '../../shared/training/node-backend.ts';
import { packWeights } from '../../shared/training/model.ts';
import type { TensorSpec } from '../../shared/codec/tensor-codec.ts';

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), 'flock-ckpt-'));
  dirs.push(d);
  return d;
}
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const specs: TensorSpec[] = [
  { name: 'd/kernel', shape: [2, 2], dtype: 'float32' },
  { name: 'd/bias', shape: [2], dtype: 'float32' },
];

function fixture(version: number): CheckpointData {
  const weights = new Uint8Array(new Float32Array([version, 1, 2, 3, 4, 5]).buffer);
  const optimizer = new Uint8Array(new Float32Array([version * 10, 0.5]).buffer);
  return {
    modelTopology: { class_name: 'Sequential', config: { name: 'm' } },
    weightSpecs: specs,
    weights,
    optimizer,
    state: {
      version,
      createdAt: 1_700_000_000_000 + version,
      runtime: { ledger: { epochs: [{ epoch: 0, done: [1, version] }] }, note: `v${version}` },
      optimizer: { step: version, specs: [{ name: 'm/d', shape: [2], dtype: 'float32' }] },
    },
  };
}

function collect(): { warn: (m: string) => void; messages: string[] } {
  const messages: string[] = [];
  return { warn: (m) => messages.push(m), messages };
}

test('save then loadLatest returns the same bytes and state', async () => {
  const root = await tempDir();
  const store = new CheckpointStore(root, 3, () => assert.fail('no warning expected'));
  const dir = await store.save(encodeCheckpoint(fixture(7)));
  assert.equal(path.basename(dir), 'v0000000007');
  const cp = await store.loadLatest();
  assert.ok(cp);
  assert.equal(cp.dir, dir);
  assert.deepEqual([...cp.weights], [...fixture(7).weights]);
  assert.deepEqual([...cp.optimizer], [...fixture(7).optimizer]);
  assert.deepEqual(cp.state, fixture(7).state);
  assert.deepEqual(cp.weightSpecs, specs);
  assert.deepEqual(cp.modelTopology, fixture(7).modelTopology);
  assert.deepEqual(await readdir(dir).then((f) => f.sort()), ['model.json', 'optimizer.bin', 'state.json', 'weights.bin']);
  const info = await store.infos();
  assert.deepEqual(info.map((i) => [i.version, i.createdAt]), [[7, 1_700_000_000_007]]);
});

test('an empty or missing root has no checkpoint', async () => {
  const root = path.join(await tempDir(), 'never-created');
  const store = new CheckpointStore(root, 3, () => assert.fail('no warning expected'));
  assert.equal(await store.loadLatest(), null);
  assert.deepEqual(await store.list(), []);
});

test('keeps only the newest N', async () => {
  const root = await tempDir();
  const store = new CheckpointStore(root, 2, () => {});
  for (const v of [1, 2, 3, 10]) await store.save(encodeCheckpoint(fixture(v)));
  assert.deepEqual((await store.list()).map((c) => c.version), [10, 3]);
  assert.deepEqual((await readdir(root)).sort(), ['v0000000003', 'v0000000010']);
  assert.equal((await store.loadLatest())?.state.version, 10);
});

test('saving the same version twice replaces it', async () => {
  const root = await tempDir();
  const store = new CheckpointStore(root, 3, () => {});
  await store.save(encodeCheckpoint(fixture(4)));
  const second = { ...fixture(4), state: { ...fixture(4).state, runtime: { note: 'again' } } };
  await store.save(encodeCheckpoint(second));
  assert.deepEqual(await readdir(root), ['v0000000004']);
  assert.deepEqual((await store.loadLatest())?.state.runtime, { note: 'again' });
});

for (const [what, damage] of [
  ['truncated', (b: Buffer) => b.subarray(0, b.byteLength - 3)],
  ['zero-filled', (b: Buffer) => Buffer.alloc(b.byteLength)],
] as const) {
  test(`a ${what} newest weights.bin falls back to the previous checkpoint, with a warning`, async () => {
    const root = await tempDir();
    const { warn, messages } = collect();
    const store = new CheckpointStore(root, 3, warn);
    await store.save(encodeCheckpoint(fixture(1)));
    const newest = await store.save(encodeCheckpoint(fixture(2)));
    const file = path.join(newest, 'weights.bin');
    await writeFile(file, damage(await readFile(file)));
    const cp = await store.loadLatest();
    assert.equal(cp?.state.version, 1);
    assert.deepEqual([...cp!.weights], [...fixture(1).weights]);
    assert.equal(messages.length, 1);
    assert.match(messages[0]!, /v0000000002 failed its checksum/);
  });
}

test('listInfos: every checkpoint whose state reads, damaged or not (what log compaction must cover); infos: the verified ones', async () => {
  const root = await tempDir();
  const store = new CheckpointStore(root, 3, () => {});
  await store.save(encodeCheckpoint(fixture(1)));
  const b = await store.save(encodeCheckpoint(fixture(2)));
  const c = await store.save(encodeCheckpoint(fixture(3)));
  await writeFile(path.join(b, 'weights.bin'), Buffer.alloc(24));
  await rm(path.join(c, 'state.json'));
  assert.deepEqual((await store.listInfos()).map((i) => [i.version, i.runtime]), [[2, fixture(2).state.runtime], [1, fixture(1).state.runtime]]);
  assert.deepEqual((await store.infos()).map((i) => i.version), [1]);
});

test('a corrupt optimizer.bin or model.json also falls back', async () => {
  const root = await tempDir();
  const { warn, messages } = collect();
  const store = new CheckpointStore(root, 3, warn);
  await store.save(encodeCheckpoint(fixture(1)));
  const a = await store.save(encodeCheckpoint(fixture(2)));
  const b = await store.save(encodeCheckpoint(fixture(3)));
  await writeFile(path.join(b, 'optimizer.bin'), Buffer.from([1, 2, 3]));
  await writeFile(path.join(a, 'model.json'), '{"modelTopology":{},"weightsManifest":[]}');
  assert.equal((await store.loadLatest())?.state.version, 1);
  assert.equal(messages.length, 2);
});

test('a leftover .tmp-* directory (crash mid-write) is ignored by load and removed by the next save', async () => {
  const root = await tempDir();
  const store = new CheckpointStore(root, 3, () => assert.fail('no warning expected'));
  await store.save(encodeCheckpoint(fixture(5)));
  // A crash after writing some files of v9, before the rename.
  const tmp = path.join(root, '.tmp-v0000000009-deadbeef');
  await mkdir(tmp);
  await writeFile(path.join(tmp, 'weights.bin'), Buffer.alloc(10));
  await writeFile(path.join(tmp, 'state.json'), JSON.stringify({ version: 9 }));
  assert.equal((await store.loadLatest())?.state.version, 5);
  assert.deepEqual((await store.list()).map((c) => c.version), [5]);
  await store.save(encodeCheckpoint(fixture(6)));
  assert.deepEqual((await readdir(root)).sort(), ['v0000000005', 'v0000000006']);
  await assert.rejects(stat(tmp), { code: 'ENOENT' });
});

test('a checkpoint without state.json is skipped (and not listed by infos)', async () => {
  const root = await tempDir();
  const { warn, messages } = collect();
  const store = new CheckpointStore(root, 3, warn);
  await store.save(encodeCheckpoint(fixture(1)));
  const newest = await store.save(encodeCheckpoint(fixture(2)));
  await rm(path.join(newest, 'state.json'));
  assert.equal((await store.loadLatest())?.state.version, 1);
  assert.equal(messages.length, 1);
  assert.match(messages[0]!, /v0000000002 is unreadable/);
  assert.deepEqual((await store.infos()).map((i) => i.version), [1]);
});

test('every checkpoint corrupt: loadLatest is null', async () => {
  const root = await tempDir();
  const { warn, messages } = collect();
  const store = new CheckpointStore(root, 3, warn);
  const d = await store.save(encodeCheckpoint(fixture(1)));
  await writeFile(path.join(d, 'weights.bin'), Buffer.alloc(0));
  assert.equal(await store.loadLatest(), null);
  assert.equal(messages.length, 1);
});

test('the saved model.json + weights.bin load with tf.loadLayersModel and predict the same', async () => {
  await initNodeBackend('wasm');
  const model = tf.sequential({
    name: 'tiny',
    layers: [
      tf.layers.dense({ inputShape: [3], units: 4, activation: 'relu', name: 'h' }),
      tf.layers.dense({ units: 2, activation: 'softmax', name: 'out' }),
    ],
  });
  const { specs: wSpecs, data } = await packWeights(model);
  assert.deepEqual(wSpecs.map((s) => s.name), ['h/kernel', 'h/bias', 'out/kernel', 'out/bias']);
  const root = await tempDir();
  const store = new CheckpointStore(root, 3, () => {});
  const dir = await store.save(encodeCheckpoint({
    modelTopology: model.toJSON(null, false),
    weightSpecs: wSpecs,
    weights: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    optimizer: new Uint8Array(0),
    state: { version: 1, createdAt: 0, runtime: null, optimizer: { step: 0, specs: [] } },
  }));

  const json = JSON.parse(await readFile(path.join(dir, 'model.json'), 'utf8')) as tf.io.ModelJSON;
  assert.equal(json.format, 'layers-model');
  assert.deepEqual(json.weightsManifest[0]!.paths, ['weights.bin']);
  const bin = await readFile(path.join(dir, 'weights.bin'));
  // A custom IOHandler reading the files, as a browser's fetch of model.json + paths would.
  const handler: tf.io.IOHandler = {
    load: async () => ({
      modelTopology: json.modelTopology,
      weightSpecs: json.weightsManifest[0]!.weights,
      weightData: bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength),
    }),
  };
  const loaded = await tf.loadLayersModel(handler);
  const x = tf.tensor2d([[0.1, -0.2, 0.3], [1, 2, 3], [-1, 0.5, 0]]);
  const want = (model.predict(x) as tf.Tensor).arraySync() as number[][];
  const got = (loaded.predict(x) as tf.Tensor).arraySync() as number[][];
  assert.deepEqual(got, want);
  // The weights are not the zero/one defaults: the comparison is meaningful.
  assert.ok(want.some((r) => Math.abs(r[0]! - 0.5) > 1e-3));
  x.dispose();
  model.dispose();
  loaded.dispose();
});
