import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeTensors, encodeTensors, layout, sameSpecs, toBytes, type TensorSpec } from './tensor-codec.ts';

const specs: TensorSpec[] = [
  { name: 'a', shape: [2], dtype: 'float32' },
  { name: 'b', shape: [3], dtype: 'uint8' },
  { name: 'c', shape: [1], dtype: 'int32' },
];
const arrays = [new Float32Array([1, -2.5]), new Uint8Array([1, 2, 255]), new Int32Array([-2])];

test('encodes to the exact little-endian bytes with 4-byte alignment padding', () => {
  const bytes = [...new Uint8Array(encodeTensors(specs, arrays))];
  assert.deepEqual(bytes, [
    0x00, 0x00, 0x80, 0x3f, // 1.0f
    0x00, 0x00, 0x20, 0xc0, // -2.5f
    0x01, 0x02, 0xff, 0x00, // uint8 x3 + one pad byte
    0xfe, 0xff, 0xff, 0xff, // int32 -2
  ]);
  assert.deepEqual(layout(specs), { offsets: [0, 8, 12], byteLength: 16 });
});

test('a trailing uint8 tensor pads the total length to a multiple of 4', () => {
  const s: TensorSpec[] = [{ name: 'u', shape: [5], dtype: 'uint8' }];
  const buf = encodeTensors(s, [new Uint8Array([9, 8, 7, 6, 5])]);
  assert.equal(buf.byteLength, 8);
  assert.deepEqual([...new Uint8Array(buf)], [9, 8, 7, 6, 5, 0, 0, 0]);
});

test('round trip keeps dtypes, shapes and values', () => {
  const out = decodeTensors(specs, encodeTensors(specs, arrays));
  assert.equal(out.length, 3);
  assert.ok(out[0]!.data instanceof Float32Array);
  assert.ok(out[1]!.data instanceof Uint8Array);
  assert.ok(out[2]!.data instanceof Int32Array);
  assert.deepEqual([...out[0]!.data], [1, -2.5]);
  assert.deepEqual([...out[1]!.data], [1, 2, 255]);
  assert.deepEqual([...out[2]!.data], [-2]);
  assert.equal(out[1]!.spec, specs[1]);
});

test('encodes from typed arrays that are views at an offset inside a bigger buffer', () => {
  const big = new Float32Array([99, 1, -2.5, 99]);
  const view = big.subarray(1, 3);
  const out = decodeTensors(specs, encodeTensors(specs, [view, arrays[1]!, arrays[2]!]));
  assert.deepEqual([...out[0]!.data], [1, -2.5]);
});

test('a Node Buffer (aligned, and unaligned inside a pool) decodes like the ArrayBuffer', () => {
  const ab = encodeTensors(specs, arrays);
  const fromAb = decodeTensors(specs, ab).map((a) => [...a.data]);

  const aligned = Buffer.from(ab);
  // An odd byte in front puts the payload at an unaligned byteOffset of a shared backing store.
  const pooled = Buffer.concat([Buffer.from([7]), Buffer.from(ab), Buffer.from([7, 7])]);
  const unaligned = pooled.subarray(1, 1 + ab.byteLength);
  assert.equal(unaligned.byteOffset % 4 !== 0, true, 'fixture must be unaligned');
  assert.equal(unaligned.buffer.byteLength >= ab.byteLength + 3, true);

  for (const b of [aligned, unaligned]) {
    const got = decodeTensors(specs, b).map((a) => [...a.data]);
    assert.deepEqual(got, fromAb);
  }
  // A DataView is accepted too.
  assert.deepEqual(decodeTensors(specs, new DataView(ab)).map((a) => [...a.data]), fromAb);
  assert.equal(toBytes(unaligned).byteOffset, unaligned.byteOffset);
});

test('a wrong byte length throws', () => {
  const ab = encodeTensors(specs, arrays);
  assert.throws(() => decodeTensors(specs, ab.slice(0, 12)), /got 12 bytes, specs need 16/);
  assert.throws(() => decodeTensors(specs, new Uint8Array(20)), /got 20 bytes, specs need 16/);
  assert.throws(() => decodeTensors(specs, new Uint8Array(0)), RangeError);
});

test('encode refuses mismatched arrays', () => {
  assert.throws(() => encodeTensors(specs, arrays.slice(0, 2)), /3 specs, 2 arrays/);
  assert.throws(() => encodeTensors(specs, [new Float32Array(3), arrays[1]!, arrays[2]!]), /a has 3 values, shape wants 2/);
});

test('sameSpecs compares names, shapes, dtypes and order', () => {
  const copy: TensorSpec[] = specs.map((s) => ({ ...s, shape: [...s.shape] }));
  assert.equal(sameSpecs(specs, copy), true);
  assert.equal(sameSpecs(specs, copy.slice(0, 2)), false);
  assert.equal(sameSpecs(specs, [copy[1]!, copy[0]!, copy[2]!]), false);
  assert.equal(sameSpecs(specs, [{ ...copy[0]!, name: 'x' }, copy[1]!, copy[2]!]), false);
  assert.equal(sameSpecs(specs, [{ ...copy[0]!, shape: [1, 2] }, copy[1]!, copy[2]!]), false);
  assert.equal(sameSpecs(specs, [{ ...copy[0]!, shape: [3] }, copy[1]!, copy[2]!]), false);
  assert.equal(sameSpecs(specs, [{ ...copy[0]!, dtype: 'int32' }, copy[1]!, copy[2]!]), false);
  assert.equal(sameSpecs([], []), true);
});
