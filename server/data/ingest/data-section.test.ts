import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DataSection, Preprocessing } from './data-section.ts';
import { formatOf } from './source.ts';

test('the data section accepts files, array objects, label lists and a split', () => {
  const ok = [
    { train: 'train.csv', test: 'test.csv', label: 'target' },
    { train: 'train.parquet', label: ['t1', 't2'], features: ['a', 'b'], validationSplit: 0.5 },
    { train: { images: 'train-images-idx3-ubyte.gz', labels: 'train-labels-idx1-ubyte.gz' }, label: 'labels' },
    { train: 'pics', format: 'images' },
  ];
  for (const d of ok) assert.deepEqual(DataSection.parse(d), d);
});

test('the data section refuses what it cannot mean', () => {
  const bad = [
    {},
    { train: '' },
    { train: {} },
    { train: 'a.csv', validationSplit: 0 },
    { train: 'a.csv', validationSplit: 0.6 },
    { train: 'a.csv', test: 'b.csv', validationSplit: 0.2 },
    { train: 'a.csv', format: 'xlsx' },
    { train: 'a.csv', labels: 'y' },
    { train: 'a.csv', label: [] },
  ];
  for (const d of bad) assert.equal(DataSection.safeParse(d).success, false, JSON.stringify(d));
});

test('preprocessing: standardize all or some, scale by a number or per column, one-hot columns', () => {
  assert.ok(Preprocessing.safeParse({ standardize: true, scale: 0.5, oneHot: ['c'] }).success);
  assert.ok(Preprocessing.safeParse({ standardize: ['a'], scale: { a: 10 } }).success);
  for (const p of [{ scale: 0 }, { scale: -1 }, { scale: { a: 'x' } }, { oneHot: 'c' }, { normalize: true }]) {
    assert.equal(Preprocessing.safeParse(p).success, false, JSON.stringify(p));
  }
});

test('format by extension; a folder is images; unknown is null', () => {
  const cases: [string, string | null][] = [
    ['a.csv', 'csv'], ['A.CSV', 'csv'], ['x.parquet', 'parquet'], ['x.arrow', 'arrow'], ['x.feather', 'arrow'], ['x.ipc', 'arrow'],
    ['x.npz', 'npz'], ['x.npy', 'npy'], ['train-images-idx3-ubyte', 'idx'], ['t10k-labels-idx1-ubyte.gz', 'idx'], ['x.txt', null], ['x.csv.gz', null],
  ];
  for (const [p, f] of cases) assert.equal(formatOf(p, false), f, p);
  assert.equal(formatOf('pics', true), 'images');
});
