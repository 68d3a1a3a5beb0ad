import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WeightsSnapshots, acceptGradient } from './wire.ts';
import { decodeVector, encodeVector } from '../../shared/codec/compression.ts';
import type { TensorSpec } from '../../shared/codec/tensor-codec.ts';

test('one snapshot per version shared by every lease; encodings made once per version', () => {
  const params = new Float32Array([1, 2, 3, 4]);
  const s = new WeightsSnapshots([2, 2]);
  const a = s.bytes(0, params, 'f32');
  const b = s.bytes(0, params, 'f32');
  assert.equal(a.buffer, b.buffer, "the same bytes, not a copy");
  params[0] = 9; // the live vector changes in place; the snapshot of v0 does not
  assert.deepEqual([...new Float32Array(a.buffer, a.byteOffset, 4)], [1, 2, 3, 4]);
  s.bytes(0, params, 'int8');
  s.bytes(0, params, 'int8');
  s.bytes(1, params, 'f16');
  for (let i = 0; i < 10; i++) s.bytes(1, params, 'f32');
  assert.deepEqual(s.made, { snapshots: 2, encodings: 2, deltas: 0 });
});

test('int8 delta against a kept version: smaller than f32 and f16, refused against int8; base + delta within scale/2', () => {
  const n = 1000;
  const params = Float32Array.from({ length: n }, (_, i) => Math.sin(i));
  const s = new WeightsSnapshots([n]);
  const v0 = s.snapshot(0, params).slice();
  for (let i = 0; i < n; i++) params[i]! += 0.001 * Math.cos(i * 3);
  const full32 = s.bytes(1, params, 'f32').byteLength;
  const d = s.delta(0, 1, params, full32);
  assert.ok(d);
  assert.equal(d.byteLength, 4 + n);
  assert.equal(s.delta(0, 1, params, s.bytes(1, params, 'f16').byteLength) !== null, true);
  assert.equal(s.delta(0, 1, params, s.bytes(1, params, 'int8').byteLength), null, 'int8 whole is as small: no delta');
  assert.equal(s.delta(7, 1, params, full32), null, 'unknown base version');
  const dec = decodeVector('int8', d, [n]);
  assert.ok(dec.ok);
  let err = 0;
  for (let i = 0; i < n; i++) err = Math.max(err, Math.abs(v0[i]! + dec.values[i]! - params[i]!));
  assert.ok(err <= 0.001 / 254 + 1e-6, `delta error ${err}`);
});

test('acceptGradient: every encoding decodes into the same check; bad bytes refused with the spec code', () => {
  const specs: TensorSpec[] = [{ name: 'w', shape: [4], dtype: 'float32' }];
  const g = new Float32Array([0.5, -1, 0, 2]);
  for (const enc of ['f32', 'f16', 'int8', 'topk'] as const) {
    const r = acceptGradient(specs, specs, encodeVector(enc, g, [4], 1), enc === 'f32' ? undefined : enc, 1000);
    assert.ok(r.ok, enc);
    assert.ok(Math.abs(r.norm - Math.hypot(0.5, 1, 0, 2)) < 0.02, `${enc}: norm ${r.norm}`);
  }
  const bad = acceptGradient(specs, specs, new Uint8Array(3), 'int8', 1000);
  assert.equal(bad.ok, false);
  assert.equal(!bad.ok && bad.code, 'GRADIENT_SPEC_MISMATCH');
  const big = acceptGradient(specs, specs, encodeVector('f16', new Float32Array([5000, 0, 0, 0]), [4]), 'f16', 1000);
  assert.equal(!big.ok && big.code, 'GRADIENT_TOO_LARGE');
});
