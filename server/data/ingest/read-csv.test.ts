// CSV through the whole ingest: exact float32 round trip, labels, one-hot, standardize, the seeded
// split, and every refusal naming the file, the 1-based line and the column. Files by csv-stringify.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'csv-stringify/sync';
import { f32, ingestOk, refused, request, withTmp } from './testing.ts';

const csv = (dir: string, name: string, rows: unknown[][]) => writeFileSync(path.join(dir, name), stringify(rows));

test('CSV: float values round-trip exactly as float32, integer labels map by identity', () =>
  withTmp(async (dir) => {
    const train = [[0.1, -2.5e-7, 0], [1e6 + 0.3, 3.14159, 2], [-7, 0, 1]];
    csv(dir, 'train.csv', [['a', 'b', 'y'], ...train]);
    csv(dir, 'test.csv', [['a', 'b', 'y'], [9.75, 1 / 3, 2]]);
    const r = await ingestOk(request(dir, { data: { train: 'train.csv', test: 'test.csv', label: 'y' }, model: { outputUnits: 3 } }));
    assert.deepEqual(r.rows('train').x, train.map(([a, b]) => [f32(a!), f32(b!)]));
    assert.deepEqual(r.rows('train').y, [0, 2, 1]);
    assert.deepEqual(r.rows('test').x, [[9.75, f32(1 / 3)]]);
    assert.deepEqual(r.meta.spec.features, { dtype: 'float32', scale: 1 });
    assert.deepEqual(r.meta.labels.classNames, ['0', '1', '2']);
    assert.deepEqual(r.meta.counts, { train: 3, test: 1 });
    assert.deepEqual(r.meta.sources, { train: 'train.csv', test: 'test.csv', validationSplit: null });
  }));

test('CSV: string labels map to sorted classes; features default to every other column, in order', () =>
  withTmp(async (dir) => {
    csv(dir, 'train.csv', [['x1', 'diagnosis', 'x2'], [1, 'M', 2], [3, 'B', 4], [5, 'M', 6]]);
    csv(dir, 'test.csv', [['x2', 'diagnosis', 'x1'], [8, 'B', 7]]);
    const r = await ingestOk(request(dir, { data: { train: 'train.csv', test: 'test.csv', label: 'diagnosis' }, model: { outputUnits: 1, binary: true } }));
    assert.deepEqual(r.meta.labels, { columns: ['diagnosis'], classNames: ['B', 'M'] });
    assert.deepEqual(r.meta.spec.target, { kind: 'classes', numClasses: 2, dtype: 'uint8', classNames: ['B', 'M'] });
    assert.deepEqual(r.rows('train').y, [1, 0, 1]);
    assert.deepEqual(r.rows('test').x, [[7, 8]], 'test columns are found by name');
    assert.deepEqual(r.meta.featureNames, ['x1', 'x2']);
  }));

test('CSV: labels -1/1 map sorted to classes 0/1; 1/2 for two classes is refused as past the classes', () =>
  withTmp(async (dir) => {
    csv(dir, 'pm.csv', [['a', 'b', 'y'], [1, 2, -1], [3, 4, 1], [5, 6, -1]]);
    const r = await ingestOk(request(dir, { data: { train: 'pm.csv', test: 'pm.csv', label: 'y' }, model: { outputUnits: 1, binary: true } }));
    assert.deepEqual(r.meta.labels.classNames, ['-1', '1']);
    assert.deepEqual(r.rows('train').y, [0, 1, 0]);
    csv(dir, 'twelve.csv', [['a', 'b', 'y'], [1, 2, 1], [3, 4, 2]]);
    await refused(request(dir, { data: { train: 'twelve.csv', test: 'twelve.csv', label: 'y' }, model: { outputUnits: 1, binary: true } }),
      /^twelve\.csv, line 3, column "y": label 2 is outside the model's 2 classes \(integer labels must be 0\.\.1\)\.$/);
  }));

test('CSV: integer pixel columns are stored as uint8 with scale 1; a standardize switches to float32', () =>
  withTmp(async (dir) => {
    csv(dir, 'train.csv', [['p0', 'p1', 'y'], [0, 255, 1], [17, 3, 0]]);
    csv(dir, 'test.csv', [['p0', 'p1', 'y'], [200, 100, 1]]);
    const base = { data: { train: 'train.csv', test: 'test.csv', label: 'y' } };
    const r = await ingestOk(request(dir, base));
    assert.deepEqual(r.meta.spec.features, { dtype: 'uint8', scale: 1 });
    assert.deepEqual(r.rows('train').x, [[0, 255], [17, 3]]);
    const half = await ingestOk(request(dir, { ...base, preprocessing: { scale: 0.5 } }));
    assert.deepEqual(half.meta.spec.features, { dtype: 'uint8', scale: 0.5 }, 'a uniform scale rides along with uint8');
    assert.deepEqual(half.meta.preprocessing.scale, [{ feature: 'p0', factor: 0.5 }, { feature: 'p1', factor: 0.5 }]);
    const st = await ingestOk(request(dir, { ...base, preprocessing: { standardize: true } }));
    assert.equal(st.meta.spec.features.dtype, 'float32');
  }));

test('CSV: one-hot expands to the categories seen in train, sorted; unseen in test gives all zeros', () =>
  withTmp(async (dir) => {
    csv(dir, 'train.csv', [['size', 'colour', 'y'], [1, 'red', 0], [2, 'blue', 1], [3, 'red', 0], [4, 'green', 1]]);
    csv(dir, 'test.csv', [['size', 'colour', 'y'], [5, 'purple', 0], [6, 'green', 1]]);
    const r = await ingestOk(request(dir, { data: { train: 'train.csv', test: 'test.csv', label: 'y' }, preprocessing: { oneHot: ['colour'], scale: { size: 0.5 } }, model: { inputShape: [4] } }));
    assert.deepEqual(r.meta.featureNames, ['size', 'colour=blue', 'colour=green', 'colour=red']);
    assert.deepEqual(r.meta.preprocessing.oneHot, [{ column: 'colour', categories: ['blue', 'green', 'red'] }]);
    assert.deepEqual(r.meta.preprocessing.rawColumns, ['size', 'colour']);
    assert.deepEqual(r.rows('train').x, [[0.5, 0, 0, 1], [1, 1, 0, 0], [1.5, 0, 0, 1], [2, 0, 1, 0]]);
    assert.deepEqual(r.rows('test').x, [[2.5, 0, 0, 0], [3, 0, 1, 0]]);
    await refused(request(dir, { data: { train: 'train.csv', test: 'test.csv', label: 'y' }, preprocessing: { oneHot: ['colour'] }, model: { inputShape: [5] } }),
      /^train\.csv: the rows give 4 features after one-hot expansion \(colour: 3\) but the model's input shape \[5\] takes 5\.$/);
  }));

test('CSV: standardize uses the training mean and population std (std 0 -> 1), after scale', () =>
  withTmp(async (dir) => {
    csv(dir, 'train.csv', [['a', 'c', 'b', 'y'], [1, 5, 10, 0], [2, 5, 20, 1], [3, 5, 60, 0]]);
    csv(dir, 'test.csv', [['a', 'c', 'b', 'y'], [4, 5, 0, 1]]);
    const r = await ingestOk(request(dir, {
      data: { train: 'train.csv', test: 'test.csv', label: 'y' },
      preprocessing: { standardize: ['a', 'c'], scale: { a: 10 } },
      model: { inputShape: [3] },
    }));
    const sd = Math.sqrt(2 / 3) * 10;
    assert.deepEqual(r.meta.preprocessing.standardize, [
      { feature: 'a', mean: 20, std: sd },
      { feature: 'c', mean: 5, std: 1 },
    ]);
    assert.deepEqual(r.rows('train').x.map((row) => row[0]), [f32(-10 / sd), 0, f32(10 / sd)]);
    assert.deepEqual(r.rows('test').x, [[f32(20 / sd), 0, 0]], 'test uses train statistics; b is untouched');
  }));

test('CSV: regression targets (several columns) as float32', () =>
  withTmp(async (dir) => {
    csv(dir, 'train.csv', [['x', 't1', 't2'], [1, 0.1, -3], [2, 0.2, 4.5]]);
    const r = await ingestOk(request(dir, {
      task: 'regression',
      data: { train: 'train.csv', label: ['t1', 't2'], validationSplit: 0.5 },
      model: { inputShape: [1], outputUnits: 2 },
    }));
    assert.deepEqual(r.meta.spec.target, { kind: 'regression', outputs: 2, names: ['t1', 't2'] });
    const all = [...r.rows('train').y, ...r.rows('test').y].sort((a, b) => a - b);
    assert.deepEqual(all, [-3, f32(0.1), f32(0.2), 4.5].sort((a, b) => a - b));
  }));

test('CSV: validationSplit holds out the same rows for the same seed and other rows for another', () =>
  withTmp(async (dir) => {
    const rows = Array.from({ length: 50 }, (_, i) => [i, i % 2]);
    csv(dir, 'train.csv', [['v', 'y'], ...rows]);
    const run = async (seed: number, out: string) =>
      ingestOk(request(dir, { seed, data: { train: 'train.csv', label: 'y', validationSplit: 0.2 }, model: { inputShape: [1] } }));
    const a = await run(1, 'a');
    const b = await run(1, 'b');
    const c = await run(2, 'c');
    const held = (r: Awaited<ReturnType<typeof run>>) => r.rows('test').x.map((x) => x[0]);
    assert.equal(held(a).length, 10);
    assert.equal(a.rows('train').x.length, 40);
    assert.deepEqual(held(a), held(b));
    assert.notDeepEqual(held(a), held(c));
    assert.deepEqual([...held(a), ...a.rows('train').x.map((x) => x[0])].sort((p, q) => p! - q!), rows.map((r) => r[0]));
    assert.deepEqual(a.meta.sources, { train: 'train.csv', test: null, validationSplit: 0.2 });
  }));

test('CSV: refusals name the file, the 1-based line and the column, and leave outDir empty', () =>
  withTmp(async (dir) => {
    const header = ['a', 'b', 'y'];
    const cases: [string, unknown[][], RegExp[], object?][] = [
      ['ragged.csv', [header, [1, 2, 0], [1, 2]], [/^ragged\.csv, line 3: the row has 2 cells but the header has 3\.$/]],
      ['text.csv', [header, [1, 2, 0], [1, 'two', 1]], [/^text\.csv, line 3, column "b": the cell is not a number/, /preprocessing\.oneHot/]],
      ['nan.csv', [header, [1, 2, 0], [1, 2, 1], ['NaN', 2, 1]], [/^nan\.csv, line 4, column "a": .*NaN or infinite/]],
      ['inf.csv', [header, [1, 'Infinity', 0]], [/^inf\.csv, line 2, column "b": .*NaN or infinite/]],
      ['empty-cell.csv', [header, [1, 2, 0], [1, '', 1]], [/^empty-cell\.csv, line 3, column "b": the cell is empty/]],
      ['empty-label.csv', [header, [1, 2, '']], [/^empty-label\.csv, line 2, column "y": the cell is empty/]],
      ['int-label.csv', [header, [1, 2, 0], [1, 2, 2]], [/^int-label\.csv, line 3, column "y": label 2 is outside the model's 2 classes/]],
      ['many-labels.csv', [header, [1, 2, 'a'], [1, 2, 'b'], [1, 2, 'c']], [/^many-labels\.csv, line 4, column "y": label "c" is distinct label number 3 but the model has 2 classes/]],
      ['no-label.csv', [['a', 'b', 'z'], [1, 2, 0]], [/^no-label\.csv, column "y": no such column \(the columns are a, b, z\)/]],
      ['width.csv', [['a', 'b', 'c', 'y'], [1, 2, 3, 0]], [/^width\.csv: the rows give 3 features but the model's input shape \[2\] takes 2\./]],
      ['header-only.csv', [header], [/^header-only\.csv: the dataset is empty/]],
      ['big.csv', [header, ...Array.from({ length: 100 }, () => [1, 2, 0])], [/^big\.csv: the dataset needs at least \d+ bytes as stored, over the limit of 200 bytes\./], { limits: { maxDatasetBytes: 200 } }],
    ];
    for (const [name, rows, patterns, extra] of cases) {
      csv(dir, name, rows);
      await refused(request(dir, { data: { train: name, test: name, label: 'y' }, ...extra }), ...patterns);
    }
  }));

test('CSV: a regression target count that does not match the outputs, a missing file, an unknown format', () =>
  withTmp(async (dir) => {
    csv(dir, 'train.csv', [['a', 'b', 'y'], [1, 2, 3]]);
    await refused(request(dir, { task: 'regression', data: { train: 'train.csv', test: 'train.csv', label: 'y' }, model: { outputUnits: 2 } }),
      /^train\.csv: the label columns give 1 targets per row but the model has 2 output units\.$/);
    await refused(request(dir, { data: { train: 'train.csv', test: 'nope.csv', label: 'y' } }), /^nope\.csv: no such file or folder/);
    writeFileSync(path.join(dir, 'train.txt'), 'a,b,y\n');
    await refused(request(dir, { data: { train: 'train.txt', label: 'y' } }), /^train\.txt: unknown data format: use \.csv, \.parquet/);
  }));

test('CSV: a test row that fails is refused after train was scanned, and nothing is left', () =>
  withTmp(async (dir) => {
    csv(dir, 'train.csv', [['a', 'b', 'y'], [1, 2, 0]]);
    csv(dir, 'test.csv', [['a', 'b', 'y'], [1, 2, 0], [1, 2, 0], [1, 'x', 0]]);
    await refused(request(dir, { data: { train: 'train.csv', test: 'test.csv', label: 'y' } }), /^test\.csv, line 4, column "b": the cell is not a number/);
  }));

test('CSV: 25,000 rows stream through count, scan and write passes with progress', () =>
  withTmp(async (dir) => {
    const n = 25_000;
    const rows = Array.from({ length: n }, (_, i) => [i, (i * 7) % 13, i % 3]);
    csv(dir, 'train.csv', [['a', 'b', 'y'], ...rows]);
    const seen: string[] = [];
    const r = await ingestOk(request(dir, {
      data: { train: 'train.csv', label: 'y', validationSplit: 0.1 },
      model: { outputUnits: 3 },
      onProgress: (p) => seen.push(`${p.phase}:${p.rows}`),
    }));
    assert.deepEqual(seen, ['count:10000', 'count:20000', 'count:25000', 'scan:10000', 'scan:20000', 'scan:25000', 'write:10000', 'write:20000', 'write:25000']);
    assert.deepEqual(r.meta.counts, { train: 22_500, test: 2_500 });
    const back = [...r.rows('train').x, ...r.rows('test').x].map((x) => x[0]!).sort((p, q) => p - q);
    assert.deepEqual(back, rows.map((row) => row[0]));
  }));

test('CSV: a failure in the write pass removes the half-written store', () =>
  withTmp(async (dir) => {
    csv(dir, 'train.csv', [['a', 'b', 'y'], [1, 2, 0], [3, 4, 1], [5, 6, 0]]);
    // Between the passes the file changes under us: the write pass meets a bad cell after writing rows.
    const onProgress = (p: { phase: string }) => {
      if (p.phase === 'scan') csv(dir, 'train.csv', [['a', 'b', 'y'], [1, 2, 0], [3, 4, 1], [5, 'x', 0]]);
    };
    await refused(request(dir, { data: { train: 'train.csv', test: 'train.csv', label: 'y' }, onProgress }), /^train\.csv, line 4, column "b": the cell is not a number/);
  }));

test('CSV: data.format reads a file of another extension; a test file without the label column is named', () =>
  withTmp(async (dir) => {
    writeFileSync(path.join(dir, 'train.txt'), 'a,b,y\n1,2,0\n3,4,1\n');
    const r = await ingestOk(request(dir, { data: { train: 'train.txt', test: 'train.txt', label: 'y', format: 'csv' } }));
    assert.deepEqual(r.rows('test').x, [[1, 2], [3, 4]]);
    csv(dir, 'test.csv', [['a', 'b', 'label'], [1, 2, 0]]);
    await refused(request(dir, { data: { train: 'train.txt', test: 'test.csv', label: 'y', format: 'csv' } }), /^test\.csv, column "y": no such label column \(the columns are a, b, label\)\.$/);
  }));

test('CSV: more than 256 classes store int32 class indices', () =>
  withTmp(async (dir) => {
    csv(dir, 'train.csv', [['a', 'b', 'y'], [1, 2, 299], [3, 4, 0], [5, 6, 257]]);
    const r = await ingestOk(request(dir, { data: { train: 'train.csv', test: 'train.csv', label: 'y' }, model: { outputUnits: 300 } }));
    assert.deepEqual(r.meta.spec.target.kind === 'classes' && r.meta.spec.target.dtype, 'int32');
    assert.deepEqual(r.rows('train').y, [299, 0, 257]);
  }));
