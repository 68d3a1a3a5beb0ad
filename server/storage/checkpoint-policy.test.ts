// The checkpoint policy with encoding off the event loop: every write starts encoding at once, but
// checkpoints reach the store in the order they were written, each after the log records it covers
// are durable; a checkpoint that fails to encode is reported and the queue goes on.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CheckpointPolicy, type CheckpointSnapshot } from './checkpoint-policy.ts';
import { encodeCheckpoint, type CheckpointInput, type EncodedCheckpoint, type StateFile } from './checkpoint-encoding.ts';
import type { CheckpointEncoder } from './checkpoint-encoder.ts';
import type { CheckpointInfo, Checkpoints } from './checkpoint-store.ts';
import { MemoryStateStore } from './memory-state-store.ts';

/** An encoder whose results the test releases, in any order. */
class HeldEncoder implements CheckpointEncoder {
  readonly held = new Map<number, { release: () => void; fail: (e: Error) => void }>();
  constructor(private readonly events: string[]) {}
  encode(cp: CheckpointInput): Promise<EncodedCheckpoint> {
    this.events.push(`encode v${cp.state.version}`);
    return new Promise((resolve, reject) => {
      this.held.set(cp.state.version, { release: () => resolve(encodeCheckpoint(cp)), fail: reject });
    });
  }
  async digest(): Promise<string[]> {
    throw new Error('not used');
  }
}

class RecordingStore implements Checkpoints {
  readonly saved: EncodedCheckpoint[] = [];
  constructor(private readonly events: string[]) {}
  async save(cp: EncodedCheckpoint): Promise<string> {
    this.events.push(`save v${cp.version}`);
    this.saved.push(cp);
    return `v${cp.version}`;
  }
  async list(): Promise<{ version: number; dir: string }[]> {
    return this.saved.map((c) => ({ version: c.version, dir: `v${c.version}` })).reverse();
  }
  async infos(): Promise<CheckpointInfo[]> {
    return this.listInfos();
  }
  async listInfos(): Promise<CheckpointInfo[]> {
    return this.saved.map((c) => JSON.parse(c.stateJson) as StateFile).map((s) => ({ version: s.version, createdAt: s.createdAt, dir: `v${s.version}`, runtime: s.runtime })).reverse();
  }
  async loadLatest(): Promise<null> {
    return null;
  }
  async file(): Promise<Buffer> {
    throw new Error('not used');
  }
}

class RecordingState extends MemoryStateStore {
  constructor(private readonly events: string[]) {
    super();
  }
  override durable(): Promise<void> {
    this.events.push('durable');
    return Promise.resolve();
  }
}

function snapshot(version: number): CheckpointSnapshot {
  return {
    version,
    weights: new Uint8Array(new Float32Array([version, 1, 2]).buffer),
    optimizer: { step: version, slots: [{ name: 'm', data: new Float32Array([version, 0.5, 0.25]) }] },
    runtime: { aggregator: { seq: version, buffered: 0 } },
  };
}

function setup(): { events: string[]; encoder: HeldEncoder; store: RecordingStore; state: RecordingState; policy: CheckpointPolicy; warnings: string[] } {
  const events: string[] = [];
  const warnings: string[] = [];
  const encoder = new HeldEncoder(events);
  const store = new RecordingStore(events);
  const state = new RecordingState(events);
  let now = 1000;
  const policy = new CheckpointPolicy(
    { jobId: 'j', store, state, now: () => now++, warn: (m) => warnings.push(m), modelTopology: { class_name: 'Sequential' }, allSpecs: [{ name: 'w', shape: [3], dtype: 'float32' }], loss: 'categoricalCrossentropy', encoder },
    null,
  );
  return { events, encoder, store, state, policy, warnings };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

test('encoding starts at write(); saves keep write order, each after durable()', async () => {
  const { events, encoder, store, policy } = setup();
  const a = policy.write(snapshot(1));
  const b = policy.write(snapshot(2));
  assert.deepEqual(events, ['encode v1', 'encode v2'], 'both encodings start before any save');
  encoder.held.get(2)!.release(); // the later one finishes first
  await tick();
  assert.deepEqual(events.filter((e) => e.startsWith('save')), [], 'v2 waits for v1');
  encoder.held.get(1)!.release();
  await Promise.all([a, b]);
  assert.deepEqual(events, ['encode v1', 'encode v2', 'durable', 'save v1', 'durable', 'durable', 'save v2', 'durable']);
  assert.equal(policy.lastVersion, 2);
  // What the store got: the slots packed in the encoder, createdAt taken at write().
  const st = JSON.parse(store.saved[1]!.stateJson) as StateFile;
  assert.deepEqual(st.optimizer, { step: 2, specs: [{ name: 'm', shape: [3], dtype: 'float32' }] });
  assert.equal(st.createdAt, 1001);
  assert.deepEqual([...new Float32Array(store.saved[1]!.optimizer.slice().buffer)], [2, 0.5, 0.25]);
});

test('a checkpoint that fails to encode is reported; the next one is written', async () => {
  const { encoder, store, policy, warnings } = setup();
  const a = policy.write(snapshot(1));
  const b = policy.write(snapshot(2));
  encoder.held.get(1)!.fail(new Error('thread gone'));
  encoder.held.get(2)!.release();
  await Promise.all([a, b]);
  assert.deepEqual(store.saved.map((c) => c.version), [2]);
  assert.deepEqual(warnings, ['job j: checkpoint v1 failed: thread gone']);
  assert.equal(policy.lastVersion, 2);
});

test('the log is compacted to the oldest replay start of every kept checkpoint, verified or not', async () => {
  const { encoder, store, state, policy } = setup();
  const compacted: number[] = [];
  state.compactUpdates = (_job, upTo) => void compacted.push(upTo);
  store.infos = async () => []; // none verifies: the bound still covers them all
  const written = [5, 9].map((v) => policy.write({ ...snapshot(v), runtime: { aggregator: { seq: v, buffered: 2 } } }));
  encoder.held.get(5)!.release();
  encoder.held.get(9)!.release();
  await Promise.all(written);
  assert.deepEqual(compacted, [3, 3]);
});

test('stop(): checkpoints still queued are dropped, none saved after it (a runtime that stepped down)', async () => {
  const { events, encoder, store, policy } = setup();
  const a = policy.write(snapshot(1));
  policy.stop();
  encoder.held.get(1)!.release();
  await a;
  assert.deepEqual(store.saved.length, 0, 'nothing saved');
  assert.ok(!events.includes('save v1'));
});
