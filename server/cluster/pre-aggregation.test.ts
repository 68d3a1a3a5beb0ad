// Gateway pre-aggregation, for real (issue 13): two coordinator processes on one Redis, a
// `buffered` + `mean` demo job, Node workers on both. The test listens on the owner's relay
// channel and counts what crosses Redis to it: single pushes and combined updates (with the
// gradients each carries). The owner must receive fewer update messages than gradients, with every
// acknowledged gradient logged once at its acked version and every shard at most once.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { deserialize } from 'node:v8';
import { Redis } from 'ioredis';
import { RedisStateStore } from '../storage/redis-state-store.ts';
import { initNodeBackend } from '../../shared/training/node-backend.ts';
import { redisMissing, startRedis, type RedisFixture } from '../storage/testing/redis-server.ts';
import { auditLog, clusterEnv, sleep, startProcess, startWorkers } from './testing/cluster-fixture.ts';

const skip = redisMissing();
let redis: RedisFixture | null = null;
before(async () => {
  if (!skip) await initNodeBackend('wasm');
});
const leftovers: (() => unknown)[] = [];
after(async () => {
  for (const stop of leftovers.splice(0)) await Promise.resolve().then(stop).catch(() => undefined);
  await redis?.stop();
});

test('2 processes, buffered+mean job: the owner receives fewer update messages than gradients pushed through the other process; 0 lost, 0 doubled', { skip, timeout: 150_000 }, async () => {
  redis = await startRedis();
  const env = clusterEnv(redis, { FLOCK_AGGREGATION: 'buffered:mean', FLOCK_EVAL_EVERY: '1000', FLOCK_LEADER_TTL_MS: '3000', FLOCK_PREAGGREGATE_MS: '200' });
  const procs = await Promise.all([startProcess(env), startProcess(env)]);
  leftovers.push(() => Promise.all(procs.map((p) => p.stop('SIGKILL'))));
  // What crosses Redis to any process's relay request channel: counted as the owner receives it.
  const tap = new Redis(redis.url);
  leftovers.push(() => tap.disconnect());
  const seen = { pushes: 0, combined: 0, combinedGradients: 0, carried: 0, other: 0 };
  /** Distinct leases whose gradient crossed (a gradient sent again, alone after a refused combined update, counts once). */
  const leases = new Set<string>();
  await tap.psubscribe('flock:relay:rpc:*');
  tap.on('pmessageBuffer', (_pattern: Buffer, _channel: Buffer, message: Buffer) => {
    const m = deserialize(message) as { kind: string; ev?: string; raw?: { leaseId?: string }; c?: { leases: { leaseId: string; gradient?: unknown }[] } };
    if (m.kind === 'combined') {
      seen.combined++;
      seen.combinedGradients += m.c!.leases.length;
      for (const l of m.c!.leases) {
        leases.add(l.leaseId);
        if (l.gradient) seen.carried++;
      }
    } else if (m.kind === 'req' && m.ev === 'gradient:push') {
      seen.pushes++;
      if (m.raw?.leaseId) leases.add(m.raw.leaseId);
    } else seen.other++;
  });
  const workers = startWorkers(procs.map((p) => p.url), 6);
  leftovers.push(() => workers.stop());
  const probe = await RedisStateStore.open(redis.url);
  leftovers.push(() => probe.close());
  const t0 = Date.now();
  try {
    for (;;) {
      await probe.reload();
      if (probe.ledger('mnist-mlp', 0).size >= 150) break;
      assert.ok(Date.now() - t0 < 100_000, `150 shards within 100 s (done ${probe.ledger('mnist-mlp', 0).size})`);
      await sleep(500);
    }
  } finally {
    await workers.stop();
  }
  await sleep(500);
  const owner = procs.findIndex((p) => p.logs.some((l) => l.includes('serves the jobs')));
  const stepDowns = procs.map((p) => p.logs.filter((l) => l.includes('stepped down:')).length).reduce((a, b) => a + b, 0);
  const audit = await auditLog(redis.url, 'mnist-mlp', workers.acked);
  const rows = (await RedisStateStore.open(redis.url).then(async (s) => {
    const r = s.updatesAfter('mnist-mlp', 0);
    s.close();
    return r;
  }));
  const viaGateway = workers.ackedBy.filter((_, i) => i % 2 !== owner).reduce((a, b) => a + b, 0);
  const messages = seen.pushes + seen.combined;
  const gradients = leases.size;
  const combinedRecords = rows.filter((r) => (r.weight ?? 1) > 1);
  console.log(`owner process ${owner + 1}; over Redis to the owner: ${seen.pushes} single push(es) + ${seen.combined} combined update(s) of ${seen.combinedGradients} gradient(s) = ${messages} message(s) for ${gradients} gradient(s) (${seen.carried} sent along for a spot check); ${viaGateway} gradient(s) acked to the gateway's workers; log ${rows.length} record(s), ${combinedRecords.length} carrying a combined sum (mean ${(combinedRecords.reduce((n, r) => n + r.weight!, 0) / Math.max(1, combinedRecords.length)).toFixed(2)} gradients); audit ${JSON.stringify(audit)}; owners stepped down ${stepDowns}`);
  for (const p of procs) await p.stop('SIGTERM');
  assert.ok(owner >= 0, 'a process owned the job');
  assert.ok(seen.combined > 0, 'the gateway forwarded combined updates');
  assert.ok(combinedRecords.length > 0, 'the owner logged combined updates');
  assert.ok(messages < gradients, `the owner received ${messages} update message(s) for ${gradients} gradient(s)`);
  assert.ok(gradients >= viaGateway, 'every gradient the gateway\'s workers had acked crossed Redis (once, or more on a retry)');
  assert.equal(audit.lost, 0);
  assert.equal(audit.wrongVersion, 0);
  assert.equal(audit.doubledLeases, 0);
  assert.equal(audit.doubledShards, 0);
  assert.ok(audit.contiguous);
  // The log's weights add up: every combined record's weight is the count of records it covers.
  let covered = 0;
  for (const r of rows) {
    if (r.weight === 0) covered++;
    else if ((r.weight ?? 1) > 1) {
      assert.equal(covered, r.weight! - 1, `record #${r.version} sums ${r.weight} gradients after ${covered} covered record(s)`);
      covered = 0;
    } else assert.equal(covered, 0, `a single record #${r.version} inside a combined update`);
  }
});
