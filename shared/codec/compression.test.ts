import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorFeedback, decodeVector, encodeVector, encodedBytes, fromHalf, negotiate, toHalf, topkIndices } from './compression.ts';

const bytesOf = (u: Uint8Array): number[] => [...u];

test('half floats: exact bits for known values, round to nearest even, clamp, subnormals', () => {
  assert.equal(toHalf(1), 0x3c00);
  assert.equal(toHalf(-2), 0xc000);
  assert.equal(toHalf(0.5), 0x3800);
  assert.equal(toHalf(65504), 0x7bff);
  assert.equal(toHalf(1e6), 0x7bff, 'finite overflow clamps to the largest half');
  assert.equal(toHalf(-1e6), 0xfbff);
  assert.equal(toHalf(Infinity), 0x7c00);
  assert.equal(toHalf(2 ** -24), 0x0001, 'smallest subnormal');
  assert.equal(toHalf(2 ** -26), 0x0000, 'below half the smallest subnormal -> 0');
  // 1 + 2^-11 is exactly halfway between 1 and 1 + 2^-10: ties to even (1.0).
  assert.equal(toHalf(1 + 2 ** -11), 0x3c00);
  assert.equal(toHalf(1 + 3 * 2 ** -11), 0x3c02);
  assert.ok(Number.isNaN(fromHalf(toHalf(NaN))));
  for (const v of [0, 1, -1, 0.333, 1234.5, -0.0001, 3e-6]) {
    const back = fromHalf(toHalf(v));
    assert.ok(Math.abs(back - v) <= Math.abs(v) * 2 ** -11 + 2 ** -25, `${v} -> ${back}`);
  }
});

test('f16: exact bytes, padded to 4', () => {
  const b = encodeVector('f16', new Float32Array([1, -2, 0.5]), [3]);
  assert.deepEqual(bytesOf(b), [0x00, 0x3c, 0x00, 0xc0, 0x00, 0x38, 0, 0]);
  const d = decodeVector('f16', b, [3]);
  assert.ok(d.ok);
  assert.deepEqual([...d.values], [1, -2, 0.5]);
});

test('int8: per-tensor scale then values, exact bytes; error within scale/2', () => {
  const x = new Float32Array([127, -63.5, 0, 1, 0.5]);
  const b = encodeVector('int8', x, [3, 2]);
  assert.equal(b.byteLength, encodedBytes('int8', 5, 2));
  assert.equal(b.byteLength, 8 + 8);
  const scales = new Float32Array(b.buffer, 0, 2);
  assert.deepEqual([...scales], [1, Math.fround(1 / 127)]);
  // Math.round: halves round up (-63.5 -> -63).
  assert.deepEqual([...new Int8Array(b.buffer, 8, 5)], [127, -63, 0, 127, 64]);
  const d = decodeVector('int8', b, [3, 2]);
  assert.ok(d.ok);
  x.forEach((v, i) => assert.ok(Math.abs(d.values[i]! - v) <= (i < 3 ? 1 : 1 / 127) / 2 + 1e-7, `${i}: ${d.values[i]} vs ${v}`));
  // A random vector: max error <= max|x| / 254 per tensor.
  const r = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i * 7.3) * (i < 500 ? 10 : 0.01));
  const rd = decodeVector('int8', encodeVector('int8', r, [500, 500]), [500, 500]);
  assert.ok(rd.ok);
  let e1 = 0, e2 = 0;
  r.forEach((v, i) => { const e = Math.abs(rd.values[i]! - v); if (i < 500) e1 = Math.max(e1, e); else e2 = Math.max(e2, e); });
  assert.ok(e1 <= 10 / 254 + 1e-6 && e2 <= 0.01 / 254 + 1e-9, `int8 errors ${e1}, ${e2}`);
});

test('topk: count, ascending indices, half values, exact bytes; everything else decodes to 0', () => {
  const x = new Float32Array([0.1, -5, 0.2, 3, -0.3, 0]);
  const b = encodeVector('topk', x, [6], 2 / 6);
  assert.deepEqual(bytesOf(b), [2, 0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0, 0x00, 0xc5, 0x00, 0x42]);
  const d = decodeVector('topk', b, [6]);
  assert.ok(d.ok);
  assert.deepEqual([...d.values], [0, -5, 0, 3, 0, 0]);
  assert.deepEqual([...topkIndices(new Float32Array([1, 1, 1, 2]), 2)], [0, 3], 'ties broken by index');
});

test('decode refuses wrong lengths and bad top-k indices', () => {
  assert.equal(decodeVector('f32', new Uint8Array(8), [3]).ok, false);
  assert.equal(decodeVector('f16', new Uint8Array(4), [3]).ok, false);
  assert.equal(decodeVector('int8', new Uint8Array(4), [3]).ok, false);
  const bad = new Uint8Array([2, 0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 0, 0x3c, 0, 0x3c]);
  const r = decodeVector('topk', bad, [6]);
  assert.equal(r.ok, false, 'indices out of order');
  const big = new Uint8Array([1, 0, 0, 0, 9, 0, 0, 0, 0, 0x3c, 0, 0]);
  assert.equal(decodeVector('topk', big, [6]).ok, false, 'index out of range');
});

test('f32 decode of aligned bytes is a view, not a copy', () => {
  const x = new Float32Array([1, 2, 3]);
  const d = decodeVector('f32', new Uint8Array(x.buffer), [3]);
  assert.ok(d.ok);
  assert.equal(d.values.buffer, x.buffer);
});

test('error feedback: what top-k did not send is sent later; the sum over steps converges to the sum of gradients', () => {
  const n = 1000;
  const ef = new ErrorFeedback('topk', [n], 0.01);
  const g = Float32Array.from({ length: n }, (_, i) => 0.001 * (1 + (i % 7)));
  const sent = new Float64Array(n);
  const steps = 4000;
  for (let s = 0; s < steps; s++) {
    const d = decodeVector('topk', ef.encode(g), [n]);
    assert.ok(d.ok);
    d.values.forEach((v, i) => (sent[i] = sent[i]! + v));
  }
  // Without feedback only the 10 largest coordinates would ever be sent; with it every coordinate
  // arrives, and sent + residual == the sum of the gradients (up to half-float rounding).
  const never = [...sent].filter((v) => v === 0).length;
  assert.equal(never, 0, `${never} coordinates never sent`);
  let maxRel = 0;
  for (let i = 0; i < n; i++) maxRel = Math.max(maxRel, Math.abs(sent[i]! - steps * g[i]!) / (steps * g[i]!));
  assert.ok(maxRel < 0.2, `sent differs from the total by up to ${(maxRel * 100).toFixed(1)}%`);
  assert.ok(ef.residualNorm() > 0 && ef.residualNorm() < 15, `residual ${ef.residualNorm()}`);
  const noEf = decodeVector('topk', encodeVector('topk', g, [n], 0.01), [n]);
  assert.ok(noEf.ok);
  assert.equal(noEf.values.filter((v) => v !== 0).length, 10);
});

test('negotiation: the job choice where the worker can, else f32', () => {
  const job = { weights: 'int8', gradients: 'topk', topkRatio: 0.005 } as const;
  assert.deepEqual(negotiate(job, ['f32', 'f16', 'int8', 'topk']), { weights: 'int8', gradients: 'topk', topkRatio: 0.005 });
  assert.deepEqual(negotiate(job, undefined), { weights: 'f32', gradients: 'f32', topkRatio: 0.005 });
  assert.deepEqual(negotiate(job, ['f32', 'int8']), { weights: 'int8', gradients: 'f32', topkRatio: 0.005 });
  assert.deepEqual(negotiate(undefined, ['int8']), { weights: 'f32', gradients: 'f32', topkRatio: 0.01 });
});

test('parseCompression reads the setting and names what it refuses', async () => {
  const { parseCompression } = await import('./compression.ts');
  assert.deepEqual(parseCompression('weights=int8,gradients=topk:0.005'), { ok: true, value: { weights: 'int8', gradients: 'topk', topkRatio: 0.005 } });
  assert.deepEqual(parseCompression('gradients=f16'), { ok: true, value: { weights: 'f32', gradients: 'f16' } });
  assert.deepEqual(parseCompression('f32'), { ok: true, value: { weights: 'f32', gradients: 'f32' } });
  assert.equal(parseCompression('weights=topk').ok, false);
  assert.equal(parseCompression('gradients=int8:0.1').ok, false);
  assert.equal(parseCompression('gradients=topk:2').ok, false);
});
