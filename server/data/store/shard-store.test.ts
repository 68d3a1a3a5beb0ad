// ShardStore over files written by StoreWriter: gather in any order (adjacent rows in one read),
// contiguous reads, bounds, and open() refusing a store whose files disagree with meta.json.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs, { mkdtempSync, readdirSync, rmSync, truncateSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { DataSpec } from '../../../shared/data/data-spec.ts';
import { ShardStore } from './shard-store.ts';
import type { StoreMeta } from './store-meta.ts';
import { StoreWriter } from './store-writer.ts';

const spec: DataSpec = { featureShape: [3], features: { dtype: 'float32', scale: 1 }, target: { kind: 'classes', numClasses: 300, dtype: 'int32' } };

/** Row r of split s: features [r, r + 0.5, -r] (+1000 in test), class r * 7. */
const xOf = (s: 'train' | 'test', r: number) => new Float32Array([r, r + 0.5, -r].map((v) => v + (s === 'test' ? 1000 : 0)));

function makeStore(counts = { train: 10, test: 4 }): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'flock-store-'));
  const w = new StoreWriter(dir);
  for (const s of ['train', 'test'] as const) {
    for (let r = 0; r < counts[s]; r++) w.push(s, new Uint8Array(xOf(s, r).buffer), new Uint8Array(new Int32Array([r * 7]).buffer));
  }
  const meta: StoreMeta = {
    formatVersion: 1,
    spec,
    counts,
    featureNames: ['a', 'b', 'c'],
    preprocessing: { rawColumns: ['a', 'b', 'c'], oneHot: [], standardize: [], scale: [] },
    labels: { columns: ['y'] },
    sources: { train: 'train.csv', test: null, validationSplit: 0.2 },
  };
  w.finish(meta);
  return dir;
}

const features = (x: Uint8Array) => [...new Float32Array(x.buffer, x.byteOffset, x.byteLength / 4)];
const classes = (y: Uint8Array) => [...new Int32Array(y.buffer, y.byteOffset, y.byteLength / 4)];

test('gather returns the asked rows in the asked order, reading adjacent rows at once', () => {
  const dir = makeStore();
  const store = ShardStore.open(dir);
  const reads = test.mock.method(fs, 'readSync');
  syncBuiltinESMExports();
  try {
    const idx = [7, 2, 3, 4, 9, 0, 0];
    const rows = store.gather('train', idx);
    assert.equal(rows.count, 7);
    assert.deepEqual(features(rows.x), idx.flatMap((r) => [...xOf('train', r)]));
    assert.deepEqual(classes(rows.y), idx.map((r) => r * 7));
    assert.equal(reads.mock.callCount(), 2 * 5, 'runs: [7] [2,3,4] [9] [0] [0], one x and one y read each');
    assert.deepEqual(features(store.gather('test', [3]).x), [...xOf('test', 3)]);
  } finally {
    reads.mock.restore();
    syncBuiltinESMExports();
    store.close();
    rmSync(dir, { recursive: true });
  }
});

test('read returns a contiguous range; counts and spec come from meta.json; bounds are enforced', () => {
  const dir = makeStore();
  const store = ShardStore.open(dir);
  try {
    assert.equal(store.count('train'), 10);
    assert.equal(store.count('test'), 4);
    assert.deepEqual(store.spec, spec);
    const r = store.read('test', 1, 4);
    assert.equal(r.count, 3);
    assert.deepEqual(features(r.x), [1, 2, 3].flatMap((i) => [...xOf('test', i)]));
    assert.deepEqual(classes(r.y), [7, 14, 21]);
    assert.equal(store.read('train', 5, 5).count, 0);
    assert.throws(() => store.read('test', 2, 5), RangeError);
    assert.throws(() => store.gather('train', [9, 10]), /row 10 outside train \[0, 10\)/);
    assert.throws(() => store.gather('train', [-1]), RangeError);
  } finally {
    store.close();
    rmSync(dir, { recursive: true });
  }
  assert.throws(() => store.read('train', 0, 1), /closed/);
});

test('open refuses a file whose size disagrees with meta.json, and leaves no descriptor open', () => {
  const dir = makeStore();
  try {
    truncateSync(path.join(dir, 'test.y'), 12);
    const before = readdirSync('/proc/self/fd').length;
    assert.throws(() => ShardStore.open(dir), /test\.y has 12 bytes, meta\.json says 4 rows of 4 = 16/);
    assert.equal(readdirSync('/proc/self/fd').length, before);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('StoreWriter.abort removes every file it wrote', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'flock-store-'));
  try {
    const w = new StoreWriter(dir);
    w.push('train', new Uint8Array(12), new Uint8Array(4));
    assert.equal(readdirSync(dir).length, 4);
    w.abort();
    assert.deepEqual(readdirSync(dir), []);
  } finally {
    rmSync(dir, { recursive: true });
  }
});
