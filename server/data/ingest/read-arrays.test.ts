// Named arrays through the ingest: .npy and .npz written by numpy itself (python3), IDX written per
// its spec by encodeIdx, gzipped or not. Values round-trip exactly; uint8 arrays default to 1/255.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { encodeIdx } from '../idx.ts';
import { f32, ingestOk, refused, request, withTmp } from './testing.ts';

const numpy = (() => {
  try {
    execFileSync('python3', ['-c', 'import numpy'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
const skip = numpy ? false : 'python3 with numpy is not installed (apt-get install -y python3-numpy): the .npy/.npz files must be written by numpy itself';

const py = (dir: string, code: string) => execFileSync('python3', ['-c', `import numpy as np, os\nos.chdir(${JSON.stringify(dir)})\n${code}`]);

test('npy: {"x", "y"} files, float32 features [N,2,2] round-trip exactly, int64 labels', { skip }, () =>
  withTmp(async (dir) => {
    py(dir, `
x = np.array([[[0.1, -2], [3.5, 1e-7]], [[4, 5], [6, 7.25]], [[-1, -2], [-3, -4]]], dtype=np.float32)
np.save('x_train.npy', x); np.save('y_train.npy', np.array([2, 0, 1], dtype=np.int64))
np.save('x_test.npy', x[:1]); np.save('y_test.npy', np.array([1], dtype=np.int64))
np.save('big.npy', x.astype('>f4'))`);
    const r = await ingestOk(request(dir, {
      data: { train: { x: 'x_train.npy', y: 'y_train.npy' }, test: { x: 'x_test.npy', y: 'y_test.npy' }, label: 'y' },
      model: { inputShape: [2, 2], outputUnits: 3 },
    }));
    assert.deepEqual(r.rows('train').x, [[0.1, -2, 3.5, 1e-7].map(f32), [4, 5, 6, 7.25], [-1, -2, -3, -4]]);
    assert.deepEqual(r.rows('train').y, [2, 0, 1]);
    assert.deepEqual(r.rows('test').y, [1]);
    assert.deepEqual(r.meta.sources.train, 'x=x_train.npy, y=y_train.npy');
    await refused(request(dir, { data: { train: { x: 'big.npy', y: 'y_train.npy' }, label: 'y' }, model: { inputShape: [2, 2], outputUnits: 3 } }),
      /^big\.npy: the array is big-endian/);
    await refused(request(dir, { data: { train: { x: 'x_train.npy', y: 'y_test.npy' }, label: 'y' }, model: { inputShape: [2, 2], outputUnits: 3 } }),
      /^y_test\.npy: the array has 1 entries but "x" has 3\.$/);
  }));

test('npz (plain and compressed): uint8 images default to 1/255, string labels map sorted', { skip }, () =>
  withTmp(async (dir) => {
    py(dir, `
x = np.arange(4 * 3 * 3, dtype=np.uint8).reshape(4, 3, 3) * 7
y = np.array(['dog', 'cat', 'dog', 'emu'])
np.savez('plain.npz', images=x, labels=y)
np.savez_compressed('small.npz', images=x, labels=y)
np.savez('extra.npz', images=x, labels=y, other=x)`);
    for (const f of ['plain.npz', 'small.npz']) {
      const r = await ingestOk(request(dir, { data: { train: f, test: f, label: 'labels' }, model: { inputShape: [3, 3, 1], outputUnits: 3 } }));
      assert.deepEqual(r.meta.spec.features, { dtype: 'uint8', scale: 1 / 255 }, f);
      assert.deepEqual(r.rows('train').x[1], Array.from({ length: 9 }, (_, i) => ((9 + i) * 7) % 256));
      assert.deepEqual(r.meta.labels.classNames, ['cat', 'dog', 'emu']);
      assert.deepEqual(r.rows('train').y, [1, 0, 1, 2]);
    }
    await refused(request(dir, { data: { train: 'extra.npz', label: 'labels' }, model: { inputShape: [3, 3, 1], outputUnits: 3 } }),
      /^extra\.npz: several arrays besides the label \(images, other\): name the feature array in data\.features\.$/);
    const r = await ingestOk(request(dir, { data: { train: 'extra.npz', label: 'labels', features: 'other' }, model: { inputShape: [9], outputUnits: 3 } }));
    assert.equal(r.meta.counts.train + r.meta.counts.test, 4);
  }));

test('IDX: gzipped and raw files as {"images", "labels"}, uint8 at 1/255; a label past the classes is refused', () =>
  withTmp(async (dir) => {
    const images = Array.from({ length: 3 * 2 * 2 }, (_, i) => (i * 37) % 256);
    writeFileSync(path.join(dir, 'train-images-idx3-ubyte.gz'), gzipSync(encodeIdx('uint8', [3, 2, 2], images)));
    writeFileSync(path.join(dir, 'train-labels-idx1-ubyte'), encodeIdx('uint8', [3], [9, 0, 4]));
    writeFileSync(path.join(dir, 'bad-labels-idx1-ubyte'), encodeIdx('uint8', [3], [9, 0, 10]));
    writeFileSync(path.join(dir, 'broken-idx1-ubyte'), encodeIdx('uint8', [3], [9, 0, 4]).subarray(0, 10));
    const data = { train: { images: 'train-images-idx3-ubyte.gz', labels: 'train-labels-idx1-ubyte' }, label: 'labels' };
    const r = await ingestOk(request(dir, { data: { ...data, test: data.train }, model: { inputShape: [2, 2, 1], outputUnits: 10 } }));
    assert.deepEqual(r.meta.spec.features, { dtype: 'uint8', scale: 1 / 255 });
    assert.deepEqual(r.rows('train').x, [images.slice(0, 4), images.slice(4, 8), images.slice(8)]);
    assert.deepEqual(r.rows('train').y, [9, 0, 4]);
    await refused(request(dir, { data: { train: { images: 'train-images-idx3-ubyte.gz', labels: 'bad-labels-idx1-ubyte' }, label: 'labels' }, model: { inputShape: [2, 2, 1], outputUnits: 10 } }),
      /^bad-labels-idx1-ubyte, row 3, column "labels": label 10 is outside the model's 10 classes/);
    await refused(request(dir, { data: { train: { images: 'train-images-idx3-ubyte.gz', labels: 'broken-idx1-ubyte' }, label: 'labels' }, model: { inputShape: [2, 2, 1], outputUnits: 10 } }),
      /^broken-idx1-ubyte: not a readable IDX file \(IDX: truncated/);
    await refused(request(dir, { data: { train: 'train-labels-idx1-ubyte', label: 'labels' } }), /^train-labels-idx1-ubyte: a idx file holds one array; give features and labels as an object/);
  }));
