import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeIdx, parseIdx } from './idx.ts';
import { loadMnist } from './dataset.ts';

test('uint8 rank 1 round trips with the exact header', () => {
  const bytes = encodeIdx('uint8', [4], [0, 1, 128, 255]);
  assert.deepEqual([...bytes], [0, 0, 0x08, 1, 0, 0, 0, 4, 0, 1, 128, 255]);
  const a = parseIdx(bytes);
  assert.equal(a.type, 'uint8');
  assert.deepEqual(a.shape, [4]);
  assert.ok(a.data instanceof Uint8Array);
  assert.deepEqual([...a.data], [0, 1, 128, 255]);
});

test('uint8 rank 3 round trips (big-endian dimensions)', () => {
  const data = Array.from({ length: 2 * 3 * 300 }, (_, i) => i % 256);
  const bytes = encodeIdx('uint8', [2, 3, 300], data);
  // 300 = 0x0000012c, big-endian
  assert.deepEqual([...bytes.subarray(12, 16)], [0, 0, 0x01, 0x2c]);
  assert.equal(bytes.byteLength, 4 + 12 + 1800);
  const a = parseIdx(bytes);
  assert.deepEqual(a.shape, [2, 3, 300]);
  assert.deepEqual([...a.data], data);
});

test('int32 round trips negative and large values, stored big-endian', () => {
  const bytes = encodeIdx('int32', [3], [-1, 0x01020304, -2147483648]);
  assert.equal(bytes[2], 0x0c);
  assert.deepEqual([...bytes.subarray(8, 20)], [0xff, 0xff, 0xff, 0xff, 0x01, 0x02, 0x03, 0x04, 0x80, 0, 0, 0]);
  const a = parseIdx(bytes);
  assert.equal(a.type, 'int32');
  assert.ok(a.data instanceof Int32Array);
  assert.deepEqual([...a.data], [-1, 0x01020304, -2147483648]);
});

test('float32 round trips; 1.5 is 3f c0 00 00 big-endian', () => {
  const bytes = encodeIdx('float32', [2, 1], [1.5, -0.25]);
  assert.deepEqual([...bytes.subarray(12, 16)], [0x3f, 0xc0, 0x00, 0x00]);
  const a = parseIdx(bytes);
  assert.equal(a.type, 'float32');
  assert.ok(a.data instanceof Float32Array);
  assert.deepEqual(a.shape, [2, 1]);
  assert.deepEqual([...a.data], [1.5, -0.25]);
});

test('float64 round trips exactly', () => {
  const vals = [Math.PI, -1e-300, 12345.678];
  const bytes = encodeIdx('float64', [3], vals);
  assert.equal(bytes[2], 0x0e);
  // PI = 0x400921fb54442d18
  assert.deepEqual([...bytes.subarray(8, 16)], [0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18]);
  const a = parseIdx(bytes);
  assert.ok(a.data instanceof Float64Array);
  assert.deepEqual([...a.data], vals);
});

test('parses from a Buffer at an offset inside a larger allocation', () => {
  const inner = encodeIdx('int32', [2], [7, -7]);
  const big = Buffer.concat([Buffer.from([1, 2, 3]), Buffer.from(inner)]).subarray(3);
  assert.deepEqual([...parseIdx(big).data], [7, -7]);
});

test('bad magic, unknown type, truncated and trailing bytes are refused', () => {
  const good = encodeIdx('uint8', [2, 2], [1, 2, 3, 4]);
  const badMagic = good.slice();
  badMagic[0] = 1;
  assert.throws(() => parseIdx(badMagic), /bad magic/);
  const badType = good.slice();
  badType[2] = 0x07;
  assert.throws(() => parseIdx(badType), /unknown type code 0x7/);
  assert.throws(() => parseIdx(good.subarray(0, good.byteLength - 1)), /truncated: 15 bytes, header says 16/);
  assert.throws(() => parseIdx(good.subarray(0, 8)), /too short for its dimensions/);
  assert.throws(() => parseIdx(good.subarray(0, 3)), /too short for a header/);
  const trailing = new Uint8Array(good.byteLength + 2);
  trailing.set(good);
  assert.throws(() => parseIdx(trailing), /2 trailing bytes/);
});

test('the real MNIST: 60000/10000 examples of 28x28, labels 0..9', async () => {
  const ds = await loadMnist();
  assert.equal(ds.train.count, 60000);
  assert.equal(ds.test.count, 10000);
  assert.deepEqual(ds.featureShape, [28, 28, 1]);
  assert.equal(ds.train.x.byteLength, 60000 * 784);
  assert.equal(ds.test.x.byteLength, 10000 * 784);
  assert.equal(ds.train.y.byteLength, 60000);
  assert.equal(ds.numClasses, 10);
  const counts = new Array<number>(10).fill(0);
  for (const l of ds.train.y) {
    assert.ok(l <= 9, `label ${l}`);
    counts[l]!++;
  }
  assert.equal(counts.reduce((a, b) => a + b, 0), 60000);
  // Every digit is well represented (MNIST has 5421..6742 of each).
  for (const c of counts) assert.ok(c > 5000 && c < 7000, `count ${c}`);
  assert.equal(counts[1], 6742);
  assert.equal(Math.max(...ds.test.y), 9);
  assert.equal(Math.min(...ds.test.y), 0);
});
