// RedisCheckpointStore: the file store's guarantees (keep-last-N, checksums, older one used when the
// newest is corrupt) plus fencing: a save with a stale token is refused and changes nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { RedisCheckpointStore } from './redis-checkpoint-store.ts';
import { FencedError } from './redis-state-store.ts';
import type { CheckpointData } from './checkpoint-store.ts';
import { encodeCheckpoint } from './checkpoint-encoding.ts';
import { redisPerFile } from './testing/redis-server.ts';

const { skip, server } = redisPerFile();

function fixture(version: number): CheckpointData {
  return {
    modelTopology: { class_name: 'Sequential', config: { name: 'm' } },
    weightSpecs: [{ name: 'd/kernel', shape: [2, 3], dtype: 'float32' }],
    weights: new Uint8Array(new Float32Array([version, 1, 2, 3, 4, 5]).buffer),
    optimizer: new Uint8Array(new Float32Array([version * 10, 0.5]).buffer),
    state: { version, createdAt: 1000 + version, runtime: { note: `v${version}` }, optimizer: { step: version, specs: [] } },
  };
}

test('redis checkpoints: keep-last-N, round trip, checksum fallback, fenced saves', { skip }, async () => {
  const r = new Redis(server().url);
  const warnings: string[] = [];
  let token: number | null = null;
  const store = new RedisCheckpointStore({ redis: r, prefix: 'cp1', jobId: 'j', kind: 'rotation', keep: 3, fence: () => ({ key: 'cp1:leader:fence', token }), warn: (m) => warnings.push(m) });
  for (const v of [1, 2, 3, 4]) await store.save(encodeCheckpoint(fixture(v)));
  assert.deepEqual((await store.list()).map((c) => c.version), [4, 3, 2]);
  assert.equal(await r.exists('cp1:job:j:cp:rotation:1'), 0, 'pruned entries are deleted');
  const latest = (await store.loadLatest())!;
  assert.equal(latest.state.version, 4);
  assert.deepEqual([...new Float32Array(latest.weights.slice().buffer)], [4, 1, 2, 3, 4, 5]);
  assert.deepEqual(latest.state.runtime, { note: 'v4' });
  const model = JSON.parse((await store.file(latest.dir, 'model.json')).toString('utf8')) as { weightsManifest: { weights: unknown[] }[] };
  assert.equal(model.weightsManifest[0]!.weights.length, 1);

  // A damaged newest checkpoint is detected and the previous one used.
  await r.hset('cp1:job:j:cp:rotation:4', 'weights', Buffer.alloc(24));
  assert.equal((await store.loadLatest())!.state.version, 3);
  assert.ok(warnings.some((w) => w.includes('checksum')));
  assert.deepEqual((await store.infos()).map((i) => i.version), [3, 2]);
  assert.deepEqual((await store.listInfos()).map((i) => [i.version, i.runtime]), [[4, { note: 'v4' }], [3, { note: 'v3' }], [2, { note: 'v2' }]], 'listInfos does not verify');

  // Fencing: this process holds token 1, then a newer owner takes token 2.
  await r.set('cp1:leader:fence', '1');
  token = 1;
  await store.save(encodeCheckpoint(fixture(5)));
  await r.incr('cp1:leader:fence');
  await assert.rejects(store.save(encodeCheckpoint(fixture(6))), FencedError);
  assert.deepEqual((await store.list()).map((c) => c.version), [5, 4, 3]);
  r.disconnect();
});
