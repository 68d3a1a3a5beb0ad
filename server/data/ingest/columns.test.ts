import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planColumns } from './columns.ts';
import { DataError } from './data-error.ts';
import type { Source } from './source.ts';

const table = (columns: string[], format: Source['format'] = 'csv'): Source => ({
  format,
  file: 'train.csv',
  columns,
  rowCount: null,
  byteColumns: new Set(),
  rows: async function* () {},
});

test('features default to every column but the label(s), in file order', () => {
  const p = planColumns(table(['a', 'y', 'b', 'z']), { train: 'train.csv', label: ['y', 'z'] }, undefined, 'regression');
  assert.deepEqual(p.features, ['a', 'b']);
  assert.deepEqual(p.labels, ['y', 'z']);
  const q = planColumns(table(['a', 'y', 'b']), { train: 'train.csv', label: 'y', features: ['b'] }, { oneHot: ['b'] }, 'classification');
  assert.deepEqual(q.features, ['b']);
  assert.deepEqual([...q.oneHot], ['b']);
});

test('an image folder needs no label: the folder name is the label', () => {
  const p = planColumns(table(['image', 'label'], 'images'), { train: 'imgs' }, undefined, 'classification');
  assert.deepEqual([p.features, p.labels], [['image'], ['label']]);
});

test('refusals: no label, two labels for classification, unknown or label columns, preprocessing outside the features', () => {
  const src = table(['a', 'b', 'y']);
  const cases: [Parameters<typeof planColumns>[1], Parameters<typeof planColumns>[2], RegExp][] = [
    [{ train: 't' }, undefined, /^train\.csv: data\.label is required: name the label column \(the columns are a, b, y\)\.$/],
    [{ train: 't', label: ['a', 'y'] }, undefined, /^train\.csv: classification takes one label column, not a list\.$/],
    [{ train: 't', label: 'y', features: ['a', 'q'] }, undefined, /^train\.csv, column "q": no such column/],
    [{ train: 't', label: 'y', features: ['a', 'y'] }, undefined, /^train\.csv, column "y": data\.features lists the label column\.$/],
    [{ train: 't', label: 'y' }, { oneHot: ['y'] }, /^train\.csv, column "y": preprocessing\.oneHot names a column that is not a feature\.$/],
    [{ train: 't', label: 'y' }, { standardize: ['a'], oneHot: ['a'] }, /^train\.csv, column "a": preprocessing\.standardize cannot apply to a one-hot column\.$/],
    [{ train: 't', label: 'y' }, { scale: { nope: 2 } }, /^train\.csv, column "nope": preprocessing\.scale names a column that is not a feature\.$/],
  ];
  for (const [data, pre, re] of cases) {
    assert.throws(() => planColumns(src, data, pre, 'classification'), (e: unknown) => {
      assert.ok(e instanceof DataError);
      assert.match(e.message, re);
      return true;
    });
  }
});
