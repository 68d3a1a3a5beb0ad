// Parquet through the ingest, files written by hyparquet-writer: exact float32 values, a list column
// of pixels (uint8, default scale 1/255) flattened in column order, several row groups and codecs,
// and refusals naming the 1-based row across row groups.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { brotliCompressSync, gzipSync } from 'node:zlib';
import { parquetWriteFile, type ColumnSource, type SchemaElement } from 'hyparquet-writer';
import { f32, ingestOk, refused, request, withTmp } from './testing.ts';

const compressors = {
  GZIP: (b: Uint8Array) => new Uint8Array(gzipSync(b)),
  BROTLI: (b: Uint8Array) => new Uint8Array(brotliCompressSync(b)),
};

function write(dir: string, name: string, columnData: ColumnSource[], schema: SchemaElement[], codec: 'SNAPPY' | 'GZIP' | 'BROTLI' | 'UNCOMPRESSED' = 'SNAPPY') {
  parquetWriteFile({ filename: path.join(dir, name), columnData, schema: [{ name: 'root', num_children: columnData.length }, ...schema], codec, compressors, rowGroupSize: 2 });
}

const listOf = (name: string, type: 'FLOAT' | 'INT32', converted?: 'UINT_8'): SchemaElement[] => [
  { name, repetition_type: 'OPTIONAL', converted_type: 'LIST', num_children: 1 },
  { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
  { name: 'element', type, repetition_type: 'REQUIRED', ...(converted ? { converted_type: converted } : {}) },
];

test('Parquet: FLOAT and DOUBLE columns round-trip as float32, string labels, every codec, row groups of 2', () =>
  withTmp(async (dir) => {
    const a = [0.1, -1.5, 3e-5, 42, 7.25];
    const b = [1 / 3, 2, -0, 1e10, 5];
    const y = ['cat', 'dog', 'cat', 'bird', 'dog'];
    for (const codec of ['SNAPPY', 'GZIP', 'BROTLI', 'UNCOMPRESSED'] as const) {
      write(dir, `${codec}.parquet`, [{ name: 'a', data: Float32Array.from(a) }, { name: 'b', data: b }, { name: 'label', data: y }], [
        { name: 'a', type: 'FLOAT', repetition_type: 'REQUIRED' },
        { name: 'b', type: 'DOUBLE', repetition_type: 'REQUIRED' },
        { name: 'label', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
      ], codec);
      const r = await ingestOk(request(dir, { data: { train: `${codec}.parquet`, test: `${codec}.parquet`, label: 'label' }, model: { outputUnits: 3 } }));
      assert.deepEqual(r.rows('train').x, a.map((v, i) => [f32(v), f32(b[i]!)]), codec);
      assert.deepEqual(r.meta.labels.classNames, ['bird', 'cat', 'dog']);
      assert.deepEqual(r.rows('train').y, [1, 2, 1, 0, 2]);
    }
  }));

test('Parquet: a list column of 0..255 integers is flattened in column order and stored uint8 with scale 1/255', () =>
  withTmp(async (dir) => {
    const pixels = [[0, 1, 2, 3], [255, 254, 253, 252], [9, 8, 7, 6]];
    write(dir, 'px.parquet', [{ name: 'bias', data: [1, 0, 1] }, { name: 'pixels', data: pixels }, { name: 'y', data: [0, 1, 1] }], [
      { name: 'bias', type: 'INT32', repetition_type: 'REQUIRED', converted_type: 'UINT_8' },
      ...listOf('pixels', 'INT32', 'UINT_8'),
      { name: 'y', type: 'INT32', repetition_type: 'REQUIRED' },
    ]);
    const r = await ingestOk(request(dir, { data: { train: 'px.parquet', test: 'px.parquet', label: 'y' }, model: { inputShape: [5] } }));
    assert.deepEqual(r.meta.spec.features, { dtype: 'uint8', scale: 1 / 255 });
    assert.deepEqual(r.rows('train').x, pixels.map((p, i) => [[1, 0, 1][i]!, ...p]));
    assert.deepEqual(r.meta.featureNames, ['bias', 'pixels[0]', 'pixels[1]', 'pixels[2]', 'pixels[3]']);
    assert.equal(r.meta.preprocessing.scale.length, 5);
  }));

test('Parquet: refusals name the 1-based row across row groups and the column', () =>
  withTmp(async (dir) => {
    write(dir, 'ragged.parquet', [{ name: 'v', data: [[1, 2], [3, 4], [5, 6], [7]] }, { name: 'y', data: [0, 1, 0, 1] }], [
      ...listOf('v', 'FLOAT'),
      { name: 'y', type: 'INT32', repetition_type: 'REQUIRED' },
    ]);
    await refused(request(dir, { data: { train: 'ragged.parquet', test: 'ragged.parquet', label: 'y' } }),
      /^ragged\.parquet, row 4, column "v": the list holds 1 values but the first row's holds 2\.$/);
    write(dir, 'null.parquet', [{ name: 'a', data: [1, 2, 3, null, 5] }, { name: 'b', data: [1, 2, 3, 4, 5] }, { name: 'y', data: [0, 1, 0, 1, 0] }], [
      { name: 'a', type: 'DOUBLE', repetition_type: 'OPTIONAL' },
      { name: 'b', type: 'DOUBLE', repetition_type: 'REQUIRED' },
      { name: 'y', type: 'INT32', repetition_type: 'REQUIRED' },
    ]);
    await refused(request(dir, { data: { train: 'null.parquet', test: 'null.parquet', label: 'y' } }), /^null\.parquet, row 4, column "a": the cell is empty/);
    await refused(request(dir, { data: { train: 'null.parquet', test: 'null.parquet', label: 'target' } }), /^null\.parquet, column "target": no such column \(the columns are a, b, y\)/);
    await refused(request(dir, { data: { train: 'null.parquet', test: 'null.parquet', label: 'y', features: ['b'] }, model: { inputShape: [3] } }),
      /^null\.parquet: the rows give 1 features but the model's input shape \[3\] takes 3\.$/);
  }));
