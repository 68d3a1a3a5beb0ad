import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Sharder, epochPermutation, shardCount, shardIndices } from './sharder.ts';

test('an epoch permutation is a permutation of 0..n-1', () => {
  for (const n of [1, 2, 17, 1000]) {
    const p = epochPermutation(n, 42, 3);
    assert.equal(p.length, n);
    const sorted = [...p].sort((a, b) => a - b);
    assert.deepEqual(sorted, Array.from({ length: n }, (_, i) => i));
  }
});

test('deterministic per (seed, epoch), different across epochs and seeds', () => {
  const a = epochPermutation(500, 7, 0);
  assert.deepEqual([...epochPermutation(500, 7, 0)], [...a]);
  const b = epochPermutation(500, 7, 1);
  const c = epochPermutation(500, 8, 0);
  const same = (x: Uint32Array, y: Uint32Array): number => x.reduce((s, v, i) => s + (v === y[i] ? 1 : 0), 0);
  // Two random permutations of 500 agree in ~1 place; allow a little slack.
  assert.ok(same(a, b) < 10, `epochs 0 and 1 agree in ${same(a, b)} places`);
  assert.ok(same(a, c) < 10, `seeds 7 and 8 agree in ${same(a, c)} places`);
  // Not the identity.
  assert.ok(same(a, Uint32Array.from({ length: 500 }, (_, i) => i)) < 10);
});

test('shards cover every index exactly once, last shard short', () => {
  const n = 1003;
  const size = 64;
  assert.equal(shardCount(n, size), 16);
  const s = new Sharder(n, size, 42);
  assert.equal(s.shardsPerEpoch, 16);
  for (const epoch of [0, 1, 5]) {
    const seen = new Uint8Array(n);
    for (let i = 0; i < s.shardsPerEpoch; i++) {
      const idx = s.indices(epoch, i);
      assert.equal(idx.length, i === 15 ? 1003 - 15 * 64 : 64);
      for (const r of idx) seen[r]!++;
    }
    assert.equal(seen.every((v) => v === 1), true, `epoch ${epoch}`);
    assert.deepEqual([...s.indices(epoch, 3)], [...shardIndices(epochPermutation(n, 42, epoch), size, 3)]);
  }
  assert.equal(shardIndices(epochPermutation(10, 1, 0), 4, 3).length, 0);
});
