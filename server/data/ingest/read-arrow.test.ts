// Arrow IPC through the ingest, written by apache-arrow's own tableToIPC in file and stream form:
// exact float32 values, fixed-size and variable lists flattened, uint8 detection, string
// labels, int64 values, several record batches with global 1-based rows in refusals.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { Field, FixedSizeList, Float32, Float64, Int64, List, Table, Uint8, Utf8, tableToIPC, vectorFromArray } from 'apache-arrow';
import { f32, ingestOk, refused, request, withTmp } from './testing.ts';

function table(rows: { a: number; l: number[]; s: string; big: bigint }[]) {
  return new Table({
    a: vectorFromArray(rows.map((r) => r.a), new Float32()),
    l: vectorFromArray(rows.map((r) => r.l), new List(new Field('item', new Float64()))),
    s: vectorFromArray(rows.map((r) => r.s), new Utf8()),
    big: vectorFromArray(rows.map((r) => r.big), new Int64()),
  });
}

test('Arrow: file and stream, two record batches, lists flattened, exact float32, string labels', () =>
  withTmp(async (dir) => {
    const rows1 = [{ a: 0.1, l: [1.5, -2], s: 'yes', big: 1n }, { a: 2.5, l: [3, 1 / 3], s: 'no', big: 2n }];
    const rows2 = [{ a: -7, l: [0, 9], s: 'yes', big: -3n }];
    const t = table(rows1).concat(table(rows2));
    assert.equal(t.batches.length, 2);
    for (const [name, form] of [['d.arrow', 'file'], ['d.feather', 'file'], ['d.ipc', 'stream'], ['s.arrow', 'stream']] as const) {
      writeFileSync(path.join(dir, name), tableToIPC(t, form));
      const r = await ingestOk(request(dir, { data: { train: name, test: name, label: 's' }, model: { inputShape: [4], outputUnits: 1, binary: true } }));
      const all = [...rows1, ...rows2];
      assert.deepEqual(r.rows('train').x, all.map((row) => [f32(row.a), ...row.l.map(f32), Number(row.big)]), name);
      assert.deepEqual(r.rows('train').y, [1, 0, 1]);
      assert.deepEqual(r.meta.featureNames, ['a', 'l[0]', 'l[1]', 'big']);
    }
  }));

test('Arrow: a fixed-size list of uint8 pixels is stored uint8 with scale 1/255 (or the given scale)', () =>
  withTmp(async (dir) => {
    const px = [[0, 10, 255, 3], [1, 2, 3, 4]];
    const t = new Table({
      pixels: vectorFromArray(px, new FixedSizeList(4, new Field('p', new Uint8()))),
      y: vectorFromArray([3, 1], new Uint8()),
    });
    writeFileSync(path.join(dir, 'px.arrow'), tableToIPC(t, 'file'));
    const base = { data: { train: 'px.arrow', test: 'px.arrow', label: 'y' }, model: { inputShape: [2, 2, 1], outputUnits: 4 } };
    const r = await ingestOk(request(dir, base));
    assert.deepEqual(r.meta.spec.features, { dtype: 'uint8', scale: 1 / 255 });
    assert.deepEqual(r.rows('train').x, px);
    assert.deepEqual(r.rows('train').y, [3, 1]);
    const s = await ingestOk(request(dir, { ...base, preprocessing: { scale: 2 } }));
    assert.deepEqual(s.meta.spec.features, { dtype: 'uint8', scale: 2 });
  }));

test('Arrow: refusals name the global 1-based row and the column', () =>
  withTmp(async (dir) => {
    const t = table([{ a: 1, l: [1, 2], s: 'x', big: 1n }]).concat(table([{ a: 1, l: [1, 2], s: 'y', big: 1n }, { a: Number.NaN, l: [1, 2], s: 'x', big: 1n }]));
    writeFileSync(path.join(dir, 'nan.arrow'), tableToIPC(t, 'stream'));
    await refused(request(dir, { data: { train: 'nan.arrow', test: 'nan.arrow', label: 's' }, model: { inputShape: [4] } }), /^nan\.arrow, row 3, column "a": the cell is NaN or infinite/);
    const ragged = table([{ a: 1, l: [1, 2], s: 'x', big: 1n }, { a: 1, l: [1, 2, 3], s: 'x', big: 1n }]);
    writeFileSync(path.join(dir, 'ragged.arrow'), tableToIPC(ragged, 'file'));
    await refused(request(dir, { data: { train: 'ragged.arrow', test: 'ragged.arrow', label: 's' }, model: { inputShape: [4] } }),
      /^ragged\.arrow, row 2, column "l": the list holds 3 values but the first row's holds 2\.$/);
    writeFileSync(path.join(dir, 'junk.arrow'), 'not arrow at all');
    await refused(request(dir, { data: { train: 'junk.arrow', label: 's' } }), /^junk\.arrow: not a readable Arrow IPC file or stream/);
  }));
