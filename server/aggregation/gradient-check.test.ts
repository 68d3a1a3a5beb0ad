import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkGradient } from './gradient-check.ts';
import { encodeTensors, type TensorSpec } from '../../shared/codec/tensor-codec.ts';
import { ErrorCode } from '../../shared/protocol/errors.ts';

const specs: TensorSpec[] = [
  { name: 'dense/kernel', shape: [2, 2], dtype: 'float32' },
  { name: 'dense/bias', shape: [2], dtype: 'float32' },
];
const pack = (k: number[], b: number[]): ArrayBuffer => encodeTensors(specs, [new Float32Array(k), new Float32Array(b)]);

test('a good gradient returns the arrays and its L2 norm', () => {
  const r = checkGradient(specs, specs, pack([3, 0, 0, 0], [0, 4]), 10);
  assert.equal(r.ok, true);
  if (!r.ok) return;
  assert.equal(r.norm, 5);
  assert.equal(r.arrays.length, 2);
  assert.deepEqual([...r.arrays[0]!.data], [3, 0, 0, 0]);
  assert.deepEqual([...r.arrays[1]!.data], [0, 4]);
  // A Node Buffer at an unaligned offset is accepted too.
  const buf = Buffer.concat([Buffer.from([0]), Buffer.from(pack([1, 1, 1, 1], [1, 1]))]).subarray(1);
  const r2 = checkGradient(specs, specs, buf, 10);
  assert.equal(r2.ok && Math.abs(r2.norm - Math.sqrt(6)) < 1e-12, true);
});

test('spec mismatch (name, shape, dtype, count) is refused', () => {
  const data = pack([0, 0, 0, 0], [0, 0]);
  const variants: TensorSpec[][] = [
    [{ ...specs[0]!, name: 'other' }, specs[1]!],
    [{ ...specs[0]!, shape: [4] }, specs[1]!],
    [specs[0]!, { ...specs[1]!, dtype: 'int32' }],
    [specs[0]!],
  ];
  for (const v of variants) {
    const r = checkGradient(specs, v, data, 10);
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.code, ErrorCode.SpecMismatch);
  }
});

test('wrong byte length is a spec mismatch', () => {
  for (const n of [0, 20, 28]) {
    const r = checkGradient(specs, specs, new Uint8Array(n), 10);
    assert.equal(!r.ok && r.code, ErrorCode.SpecMismatch);
    assert.match(!r.ok ? r.message : '', new RegExp(`got ${n} bytes, specs need 24`));
  }
});

test('NaN and Infinity are refused as non-finite, naming the tensor', () => {
  const nan = checkGradient(specs, specs, pack([0, 0, 0, 0], [0, NaN]), 10);
  assert.equal(!nan.ok && nan.code, ErrorCode.NonFinite);
  assert.match(!nan.ok ? nan.message : '', /dense\/bias .* at 1/);
  const inf = checkGradient(specs, specs, pack([0, -Infinity, 0, 0], [0, 0]), 1e30);
  assert.equal(!inf.ok && inf.code, ErrorCode.NonFinite);
  assert.match(!inf.ok ? inf.message : '', /dense\/kernel .* at 1/);
});

test('a norm over the bound is refused as too large; at the bound it passes', () => {
  const over = checkGradient(specs, specs, pack([3, 0, 0, 0], [0, 4]), 4.999);
  assert.equal(!over.ok && over.code, ErrorCode.TooLarge);
  const at = checkGradient(specs, specs, pack([3, 0, 0, 0], [0, 4]), 5);
  assert.equal(at.ok, true);
});
