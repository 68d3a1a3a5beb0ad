// The coordinator's row compression policy (real zlib; the worker's fflate inflation):
// rows round-trip exactly; a worker that cannot inflate, small rows and incompressible rows travel
// as they are; a job whose rows keep not compressing stops being tried.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { RowCompressor, DEFAULT_ROW_COMPRESSION } from './row-compression.ts';
import { inflateRows } from '../../shared/codec/rows-codec.ts';
import type { LeaseAck } from '../../shared/protocol/messages.ts';

function leaseWith(x: Uint8Array, y: Uint8Array, jobId = 'j'): LeaseAck {
  return { ok: true, lease: { leaseId: 'l', jobId, epoch: 0, shardIndex: 0, baseVersion: 0, deadlineAt: 0, numSamples: y.length, x, y }, weights: null };
}

/** Image-like rows: mostly zeros with a blob of ink (what DEFLATE is good at). */
function imageRows(n: number, bytes: number): Uint8Array {
  const x = new Uint8Array(n * bytes);
  for (let r = 0; r < n; r++) for (let i = 200; i < 420; i++) x[r * bytes + i] = (r * 7 + i * 13) % 251;
  return x;
}

/** Random bytes: nothing for DEFLATE to find (stands for float features that are noise to it). */
const noise = (n: number): Uint8Array => new Uint8Array(randomBytes(n));

test('image rows are compressed and inflate back to the same bytes; the saving is reported', async () => {
  const x = imageRows(64, 784);
  const y = Uint8Array.from({ length: 64 }, (_, i) => i % 10);
  const c = new RowCompressor();
  const { ack, saved } = await c.forWire(leaseWith(x, y), ['deflate-raw']);
  assert.ok(ack.ok);
  assert.equal(ack.lease.rowsEncoding, 'deflate-raw');
  const cx = ack.lease.x as Uint8Array;
  const cy = ack.lease.y as Uint8Array;
  assert.equal(saved, x.byteLength + y.byteLength - cx.byteLength - cy.byteLength);
  assert.ok(cx.byteLength * 3 < x.byteLength, `${x.byteLength} -> ${cx.byteLength}`);
  assert.deepEqual(inflateRows(cx, x.byteLength), x);
  assert.deepEqual(inflateRows(cy, y.byteLength), y);
  assert.throws(() => inflateRows(cx, x.byteLength + 1), /inflated to 50176 bytes, expected 50177/);
  assert.throws(() => inflateRows(cx, x.byteLength - 1), /inflated to more than 50175 bytes, expected 50175/);
  assert.throws(() => inflateRows(new Uint8Array(0), 10), /empty/);
  assert.throws(() => inflateRows(x.subarray(0, 100), 100), /do not inflate|inflated to/);
  assert.deepEqual(c.figures('j'), { tried: 1, compressed: 1, rawBytes: x.byteLength + y.byteLength, sentBytes: cx.byteLength + cy.byteLength });
});

test('as they are: to a worker that cannot inflate, small rows, a refusal, and incompressible rows', async () => {
  const c = new RowCompressor();
  const big = leaseWith(imageRows(64, 784), new Uint8Array(64));
  for (const codecs of [undefined, []]) {
    const r = await c.forWire(big, codecs);
    assert.equal(r.ack, big);
    assert.equal(r.saved, 0);
  }
  const small = leaseWith(new Uint8Array(1000), new Uint8Array(10));
  assert.equal((await c.forWire(small, ['deflate-raw'])).ack, small);
  const refused: LeaseAck = { ok: false, code: 'NO_WORK', message: 'every shard is taken' } as LeaseAck;
  assert.equal((await c.forWire(refused, ['deflate-raw'])).ack, refused);
  const random = leaseWith(noise(64 * 784), noise(64), 'noisy');
  const r = await c.forWire(random, ['deflate-raw']);
  assert.equal(r.ack, random, 'noise does not shrink by 10%: the lease carries the originals');
  assert.equal(r.ack.ok && r.ack.lease.rowsEncoding, undefined);
});

test('a job whose rows do not compress is no longer tried after its first leases; another job still is', async () => {
  const c = new RowCompressor();
  for (let i = 0; i < DEFAULT_ROW_COMPRESSION.probeLeases; i++) await c.forWire(leaseWith(noise(8192), noise(16), 'noisy'), ['deflate-raw']);
  assert.equal(c.figures('noisy')?.tried, DEFAULT_ROW_COMPRESSION.probeLeases);
  assert.equal(c.worthTrying('noisy'), false);
  await c.forWire(leaseWith(noise(8192), noise(16), 'noisy'), ['deflate-raw']);
  assert.equal(c.figures('noisy')?.tried, DEFAULT_ROW_COMPRESSION.probeLeases, 'not tried again');
  assert.equal(c.worthTrying('images'), true);
  const r = await c.forWire(leaseWith(imageRows(16, 784), new Uint8Array(16), 'images'), ['deflate-raw']);
  assert.ok(r.saved > 0);
});
