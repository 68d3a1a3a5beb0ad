// The checkpoint thread gives the bytes the event loop would (so stores and old checkpoints are
// unaffected), moves the arrays it is handed instead of copying them, reports a bad checkpoint as
// a rejection and keeps serving, and leaves the event loop free while it packs and hashes.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { encodeCheckpoint, type CheckpointInput } from './checkpoint-encoding.ts';
import { ThreadedCheckpointEncoder } from './checkpoint-encoder.ts';
import type { TensorSpec } from '../../shared/codec/tensor-codec.ts';

const encoder = new ThreadedCheckpointEncoder();
after(() => encoder.close());

/** A checkpoint of `params` weights with two optimizer slots (Adam's m and v) of the same size. */
function input(params: number, version = 3): CheckpointInput {
  const weights = new Float32Array(params).map((_, i) => Math.sin(i + version));
  const m = new Float32Array(params).map((_, i) => i * 1e-3);
  const v = new Float32Array(params).fill(version);
  const optSpecs: TensorSpec[] = ['m', 'v'].map((name) => ({ name, shape: [params], dtype: 'float32' }));
  return {
    modelTopology: { class_name: 'Sequential', config: { name: 'm', layers: [] } },
    weightSpecs: [{ name: 'd/kernel', shape: [params], dtype: 'float32' }],
    weights: new Uint8Array(weights.buffer),
    optimizer: [m, v],
    state: { version, createdAt: 1_700_000_000_000, runtime: { ledger: { epochs: [{ epoch: 0, done: [1, 2] }] }, note: 'é' }, optimizer: { step: 7, specs: optSpecs } },
  };
}

/** A deep copy (the encoder detaches what it is handed). */
function copy(cp: CheckpointInput): CheckpointInput {
  return { ...cp, weights: cp.weights.slice(), optimizer: cp.optimizer instanceof Uint8Array ? cp.optimizer.slice() : cp.optimizer.map((s) => s.slice()) };
}

async function maxLoopGapDuring<T>(work: () => Promise<T>): Promise<{ value: T; gapMs: number }> {
  let last = performance.now();
  let gap = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    gap = Math.max(gap, now - last);
    last = now;
  }, 1);
  try {
    const value = await work();
    gap = Math.max(gap, performance.now() - last);
    return { value, gapMs: gap };
  } finally {
    clearInterval(timer);
  }
}

test('the thread encodes byte for byte what the event loop would', async () => {
  const cp = input(1000);
  const want = encodeCheckpoint(copy(cp));
  const got = await encoder.encode(copy(cp));
  assert.equal(got.version, 3);
  assert.equal(got.modelJson, want.modelJson);
  assert.equal(got.stateJson, want.stateJson);
  assert.deepEqual(Buffer.from(got.weights), Buffer.from(want.weights));
  assert.deepEqual(Buffer.from(got.optimizer), Buffer.from(want.optimizer));
  assert.equal(got.optimizer.byteLength, 2 * 1000 * 4);
  // The checksums in state.json are of these bytes.
  const st = JSON.parse(got.stateJson) as { sha256: { weights: string; optimizer: string; model: string } };
  assert.equal(st.sha256.weights, createHash('sha256').update(got.weights).digest('hex'));
  assert.equal(st.sha256.optimizer, createHash('sha256').update(got.optimizer).digest('hex'));
  assert.equal(st.sha256.model, createHash('sha256').update(got.modelJson).digest('hex'));
  // Already packed optimizer bytes (the best checkpoint's empty ones) pass through.
  const best = await encoder.encode({ ...copy(cp), optimizer: new Uint8Array(0), state: { ...cp.state, optimizer: { step: 0, specs: [] } } });
  assert.equal(best.optimizer.byteLength, 0);
});

test('arrays owning their buffer are moved to the thread; views into a larger buffer are copied', async () => {
  const cp = input(100);
  const [m, v] = cp.optimizer as Float32Array[];
  await encoder.encode(cp);
  assert.equal(cp.weights.byteLength, 0, 'weights moved, not copied');
  assert.equal(m!.length, 0);
  assert.equal(v!.length, 0);

  const big = new Float32Array(300).fill(2);
  const view = big.subarray(100, 200);
  const encoded = await encoder.encode({ ...input(100), optimizer: [view, big.subarray(0, 100)] });
  assert.equal(big.length, 300, 'a view is copied: the buffer behind it stays usable');
  assert.deepEqual(new Float32Array(encoded.optimizer.slice().buffer).slice(0, 3), new Float32Array([2, 2, 2]));
});

test('digest: SHA-256 of each part, in order', async () => {
  const parts = [new Uint8Array([1, 2, 3]), 'model', Buffer.from('x'.repeat(10_000))];
  const want = parts.map((p) => createHash('sha256').update(p).digest('hex'));
  assert.deepEqual(await encoder.digest(parts), want);
});

test('a checkpoint that cannot be encoded is a rejection; the thread serves the next one', async () => {
  const bad = { ...input(10), optimizer: [new Float32Array(10)] }; // two specs, one slot
  await assert.rejects(encoder.encode(bad), /2 specs, 1 arrays/);
  const notData = { ...input(10), state: { ...input(10).state, runtime: { f: () => 1 } } };
  await assert.rejects(encoder.encode(notData), /could not be cloned/);
  assert.equal((await encoder.encode(input(10, 9))).version, 9);
});

test('a 2M-parameter checkpoint with two slots (24 MB): the event loop is not held while the thread packs and hashes it', async () => {
  const params = 2_000_000;
  await encoder.encode(input(10)); // thread start
  const [ia, ib] = [input(params), input(params)];
  const a = await maxLoopGapDuring(async () => encodeCheckpoint(ia));
  const b = await maxLoopGapDuring(() => encoder.encode(ib));
  assert.equal(b.value.stateJson, a.value.stateJson);
  // On the event loop: packing 16 MB and hashing 24 MB in one go. In the thread: posting and receiving.
  assert.ok(b.gapMs < a.gapMs / 2, `longest event-loop stall: thread ${b.gapMs.toFixed(1)} ms, event loop ${a.gapMs.toFixed(1)} ms`);
  assert.ok(b.gapMs < 30, `event loop held ${b.gapMs.toFixed(1)} ms during a threaded encode`);
});
