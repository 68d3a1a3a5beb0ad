// The gateway's pre-aggregator without Redis: what it combines, what it sends alone, and how it
// falls back when the owner names leases to push individually or does not take a combined update.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PreAggregator, sumInOrder, type CombinedAnswer, type WireCombined } from './pre-aggregator.ts';
import { aggregationFor } from '../aggregation/aggregation-config.ts';
import type { TensorSpec } from '../../shared/codec/tensor-codec.ts';

const SPECS: TensorSpec[] = [{ name: 'w', shape: [4], dtype: 'float32' }];
const push = (leaseId: string, values: number[], baseVersion = 0) => ({ leaseId, baseVersion, numSamples: 8, loss: 1, computeMs: 1, specs: SPECS, data: new Uint8Array(Float32Array.from(values).buffer) });

function harness(answer: (c: WireCombined) => CombinedAnswer, rule: 'mean' | 'centered-clip' = 'mean', bufferSize = 3) {
  const sent: WireCombined[] = [];
  const alone: string[] = [];
  const pre = new PreAggregator({
    intervalMs: 20,
    job: async () => ({ aggregation: aggregationFor({ mode: 'buffered', rule, bufferSize }), maxGradNorm: 10, staleness: { rule: 'inverse', maxStaleness: 2 } }),
    send: async (c) => (sent.push(c), answer(c)),
    individually: async (_sid, raw) => (alone.push((raw as { leaseId: string }).leaseId), { ok: true, status: 'applied', version: 9, staleness: 0, scale: 1 }),
  });
  pre.learnSpecs('j', SPECS);
  return { pre, sent, alone };
}

const okAll = (c: WireCombined): CombinedAnswer => ({ ok: true, acks: c.leases.map(() => ({ ok: true, status: 'buffered', version: 1, staleness: 0, scale: 1 })) });

test('pushes of one job and base version are summed in arrival order into one combined update (bufferSize fills it at once)', async () => {
  const h = harness(okAll);
  const acks = await Promise.all([h.pre.push('s1', 'j', push('a', [1, 2, 3, 4])), h.pre.push('s2', 'j', push('b', [0.5, 0, 0, 1])), h.pre.push('s1', 'j', push('c', [0, 0, 1, 0]))]);
  assert.equal(h.sent.length, 1);
  assert.deepEqual(h.sent[0]!.leases.map((l) => [l.sid, l.leaseId]), [['s1', 'a'], ['s2', 'b'], ['s1', 'c']]);
  assert.deepEqual([...new Float32Array(h.sent[0]!.sum.slice().buffer)], [...sumInOrder([Float32Array.of(1, 2, 3, 4), Float32Array.of(0.5, 0, 0, 1), Float32Array.of(0, 0, 1, 0)])]);
  assert.ok(Math.abs(h.sent[0]!.leases[0]!.norm - Math.sqrt(30)) < 1e-9, 'per-worker norms travel');
  assert.deepEqual(acks.map((a) => (a as { status: string }).status), ['buffered', 'buffered', 'buffered']);
  assert.deepEqual(h.alone, []);
});

test('different base versions are separate updates; a lone gradient after the interval goes alone', async () => {
  const h = harness(okAll);
  await Promise.all([h.pre.push('s1', 'j', push('a', [1, 0, 0, 0], 0)), h.pre.push('s2', 'j', push('b', [1, 0, 0, 0], 1)), h.pre.push('s3', 'j', push('c', [1, 0, 0, 0], 1))]);
  assert.deepEqual(h.sent.map((c) => [c.baseVersion, c.leases.length]), [[1, 2]]);
  assert.deepEqual(h.alone, ['a']);
});

test('robust jobs, bad tensors, stale gradients and replicas go alone', async () => {
  const robust = harness(okAll, 'centered-clip');
  await Promise.all([robust.pre.push('s1', 'j', push('a', [1, 0, 0, 0])), robust.pre.push('s2', 'j', push('b', [1, 0, 0, 0]))]);
  assert.deepEqual([robust.sent.length, robust.alone], [0, ['a', 'b']]);
  const h = harness(okAll);
  h.pre.learnVersion('j', 5);
  await Promise.all([
    h.pre.push('s1', 'j', push('nan', [NaN, 0, 0, 0], 5)),
    h.pre.push('s1', 'j', push('big', [100, 0, 0, 0], 5)),
    h.pre.push('s1', 'j', push('stale', [1, 0, 0, 0], 2)),
    h.pre.push('s1', 'j', push('spot-1-1', [1, 0, 0, 0], 5)),
    h.pre.push('s1', 'unknown-job', push('x', [1, 0, 0, 0], 5)),
  ]);
  assert.deepEqual([h.sent.length, h.alone.sort()], [0, ['big', 'nan', 'spot-1-1', 'stale', 'x']]);
});

test('the owner names leases to push alone: those go alone, the rest combined once more; a second refusal or an error sends all alone', async () => {
  let calls = 0;
  const h = harness((c) => (++calls === 1 ? { ok: false, individually: ['b'] } : okAll(c)), 'mean', 3);
  await Promise.all([h.pre.push('s1', 'j', push('a', [1, 0, 0, 0])), h.pre.push('s2', 'j', push('b', [2, 0, 0, 0])), h.pre.push('s3', 'j', push('c', [3, 0, 0, 0]))]);
  assert.deepEqual(h.sent.map((c) => c.leases.map((l) => l.leaseId)), [['a', 'b', 'c'], ['a', 'c']]);
  assert.deepEqual([...new Float32Array(h.sent[1]!.sum.slice().buffer)], [4, 0, 0, 0], 'the sum without b');
  assert.deepEqual(h.alone, ['b']);
  const err = harness(() => ({ ok: false, error: 'the owner did not answer' }));
  await Promise.all([err.pre.push('s1', 'j', push('a', [1, 0, 0, 0])), err.pre.push('s2', 'j', push('b', [2, 0, 0, 0]))]);
  assert.deepEqual(err.alone.sort(), ['a', 'b']);
});

test('a retried push of a waiting lease joins the first one\'s answer; a spot-checked lease carries its own gradient', async () => {
  const h = harness(okAll, 'mean', 2);
  h.pre.mustCarry('b');
  const first = h.pre.push('s1', 'j', push('a', [1, 0, 0, 0]));
  const retry = h.pre.push('s1', 'j', push('a', [1, 0, 0, 0]));
  await Promise.all([first, retry, h.pre.push('s2', 'j', push('b', [2, 0, 0, 0]))]);
  assert.equal(h.sent.length, 1);
  assert.deepEqual(h.sent[0]!.leases.map((l) => [l.leaseId, l.gradient ? [...new Float32Array(l.gradient.slice().buffer)] : null]), [['a', null], ['b', [2, 0, 0, 0]]]);
  assert.equal(await first, await retry);
});
