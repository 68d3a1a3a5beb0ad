// Several coordinator processes on one Redis, for real: child processes running server/main.ts
// with FLOCK_STORE=redis, Node workers (the real worker loop) spread over them.
//  1. Three processes train one epoch of the MNIST MLP together: every shard of the epoch is in the
//     update log exactly once, every acknowledged gradient is logged once at its acked version, and
//     the final test accuracy reaches what a single process reaches (>= 0.9 after one epoch).
//  2. The owner is SIGKILLed repeatedly: another process takes over from Redis alone; takeover time
//     is measured; then a gateway (non-owner) is SIGKILLed and restarted: the owner ends its
//     sessions when its heartbeat runs out, its worker trains on; 0 acknowledged updates lost, 0
//     applied twice.
//  3. The owner stalls past its lease (SIGSTOP, then SIGCONT after a takeover): it steps down in
//     place, its own workers keep their connections and train through the new owner; elected again
//     later, it reloads the jobs from Redis; 0 acknowledged updates lost, 0 applied twice.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { RedisStateStore } from '../storage/redis-state-store.ts';
import { parseHolder } from './leadership.ts';
import { Redis } from 'ioredis';
import { initNodeBackend } from '../../shared/training/node-backend.ts';
import { redisMissing, startRedis, type RedisFixture } from '../storage/testing/redis-server.ts';
import { auditLog, clusterEnv, sleep, startProcess, startWorkers, supervise } from './testing/cluster-fixture.ts';
import type { CoordinatorProcess } from '../../e2e/coordinator-process.ts';

const skip = redisMissing();
let redis: RedisFixture | null = null;
before(async () => {
  if (skip) return;
  await initNodeBackend('wasm');
});
// Whatever a failed test left running (processes, connections) is stopped here, so the file ends.
const leftovers: (() => unknown)[] = [];
after(async () => {
  for (const stop of leftovers.splice(0)) await Promise.resolve().then(stop).catch(() => undefined);
  await redis?.stop();
});

test('3 processes, 6 workers, one epoch: every shard once, nothing lost or doubled, single-process accuracy', { skip, timeout: 150_000 }, async () => {
  redis = await startRedis();
  const env = clusterEnv(redis, { FLOCK_MAX_EPOCHS: '1', FLOCK_BATCH_SIZE: '128', FLOCK_EVAL_EVERY: '1000', FLOCK_LEADER_TTL_MS: '3000' });
  const procs = await Promise.all([startProcess(env), startProcess(env), startProcess(env)]);
  const supervisor = supervise(procs, env);
  const workers = startWorkers(procs.map((p) => p.url), 6);
  const t0 = Date.now();
  const probe = await RedisStateStore.open(redis.url);
  leftovers.push(() => Promise.all(procs.map((p) => p.stop('SIGKILL'))), () => workers.stop(), () => probe.close());
  try {
    // Until the job has evaluated its final model (status finished, a metric at the last version).
    for (;;) {
      await probe.reload();
      const m = probe.metrics('mnist-mlp');
      // Metrics name model versions (steps); with buffered aggregation a step combines several log records.
      const last = probe.updatesAfter('mnist-mlp', (probe.lastVersion('mnist-mlp') ?? 1) - 1).at(-1);
      if (m.length > 0 && probe.ledger('mnist-mlp', 0).size >= 469 && last && m.at(-1)!.version === (last.step ?? last.version)) break;
      if (Date.now() - t0 >= 120_000) for (const p of procs) console.log(p.logs.slice(-15).join('\n'));
      assert.ok(Date.now() - t0 < 120_000, `one epoch within 120 s (shards done ${probe.ledger('mnist-mlp', 0).size}, v${probe.lastVersion('mnist-mlp')}, metrics at ${m.map((x) => x.version).join(',')})`);
      await sleep(500);
    }
  } finally {
    supervisor.stop();
    await workers.stop();
  }
  const ledger = probe.ledger('mnist-mlp', 0);
  const final = probe.metrics('mnist-mlp').at(-1)!;
  probe.close();
  const audit = await auditLog(redis.url, 'mnist-mlp', workers.acked);
  // On two shared cores an owner's event loop can stall past its lease: another process then takes
  // over mid-run (correctly, with a newer token) and the stalled one steps down. Counted, not forbidden.
  const owners = procs.map((p) => p.logs.filter((l) => l.includes('serves the jobs')).length).reduce((a, b) => a + b, 0);
  const stepDowns = procs.map((p) => p.logs.filter((l) => l.includes('stepped down:')).length).reduce((a, b) => a + b, 0);
  for (const p of procs) await p.stop('SIGTERM');
  for (const p of procs) console.log(`process :${p.port} ${p.logs.filter((l) => l.includes('relay: ')).at(-1) ?? '(no relay figures yet)'}`);
  console.log(`3 processes: one epoch in ${((Date.now() - t0) / 1000).toFixed(1)} s, ${audit.logged} updates, test accuracy ${final.testAccuracy}, audit ${JSON.stringify(audit)}, ownership terms ${owners}, owners stepped down ${stepDowns}, processes that exited by themselves (restarted) ${supervisor.restarts()}`);
  assert.equal(ledger.size, 469, 'all 469 shards of epoch 1 (60000 / 128) completed');
  assert.ok([...ledger.values()].every((n) => n === 1), 'every shard exactly once');
  assert.equal(audit.lost, 0);
  assert.equal(audit.wrongVersion, 0);
  assert.equal(audit.doubledLeases, 0);
  assert.equal(audit.doubledShards, 0);
  assert.ok(audit.contiguous);
  assert.ok(owners >= 1, 'a process owned the job');
  // The owner's job:update broadcasts (the final evaluation, 'finished') reach workers on every
  // process through socket.io's Redis adapter.
  for (let p = 0; p < 3; p++) assert.ok(workers.updates[p]! + workers.updates[p + 3]! > 0, `workers on process ${p + 1} received job:update`);
  assert.ok(workers.acked.size > 300, `workers on all processes were acknowledged (${workers.acked.size})`);
  assert.ok((final.testAccuracy ?? 0) >= 0.9, `accuracy ${final.testAccuracy} after one epoch`);
  await redis.stop();
  redis = null;
});

test('owner SIGKILLed 3 times, then a gateway: takeover from Redis, the gateway\'s worker trains on, 0 acknowledged updates lost or applied twice', { skip, timeout: 150_000 }, async () => {
  redis = await startRedis();
  // FLOCK_TEST_LEADER_TTL_MS=3000 measures the default lease (1500 here keeps the test short).
  const env = clusterEnv(redis, { FLOCK_LEADER_TTL_MS: process.env.FLOCK_TEST_LEADER_TTL_MS ?? '1500' });
  const procs: CoordinatorProcess[] = await Promise.all([startProcess(env), startProcess(env), startProcess(env)]);
  const workers = startWorkers(procs.map((p) => p.url), 3);
  const r = new Redis(redis.url);
  const takeovers: number[] = [];
  // Gateway kill: kill -> the worker's 5th acknowledged update, -> the owner ended the dead
  // gateway's sessions (heartbeat ran out), -> the restarted process was ready (ms).
  let gatewayBack: number | null = null;
  let goneMs: number | null = null;
  let restartMs: number | null = null;
  const until = async (ok: () => boolean, ms: number, what: string): Promise<void> => {
    const since = Date.now();
    while (!ok()) {
      if (Date.now() - since >= ms) for (const p of procs) console.log(`--- ${p.port}\n${p.logs.slice(-25).join('\n')}`);
      assert.ok(Date.now() - since < ms, `${what} within ${ms / 1000} s`);
      await sleep(20);
    }
  };
  const supervisor = supervise(procs, env);
  leftovers.push(() => supervisor.stop(), () => Promise.all(procs.map((p) => p.stop('SIGKILL'))), () => workers.stop(), () => r.disconnect());
  try {
    for (let k = 0; k < 3; k++) {
      // Counted in acknowledged gradients: with buffered aggregation (the default) an ack names the
      // step its gradient joins, and bufferSize gradients share one step.
      const before = workers.acked.size;
      const since = Date.now();
      while (workers.acked.size < before + 30) {
        if (Date.now() - since >= 30_000) for (const p of procs) console.log(`--- ${p.port}\n${p.logs.slice(-25).join('\n')}`);
        assert.ok(Date.now() - since < 30_000, `before kill ${k + 1}: 30 acknowledged updates within 30 s (${workers.acked.size - before}, at step ${workers.maxAcked()})`);
        await sleep(50);
      }
      const owner = parseHolder(await r.get('flock:leader'))!;
      const i = procs.findIndex((p) => p.logs.some((l) => l.includes(`process ${owner.processId} serves the jobs`)));
      assert.ok(i >= 0, 'the owner is one of ours');
      const port = procs[i]!.port;
      await procs[i]!.stop('SIGKILL');
      const killedAt = Date.now();
      // The killed one comes back on its port (a load balancer would send its workers elsewhere).
      const restarted = startProcess(env, port);
      // Everything the dead owner logged (acks it sent just before dying still arrive): the takeover
      // ends with the first acknowledged update not in that log, which only the new owner can apply.
      await sleep(50);
      const loggedAtKill = new Set(await r.hkeys('flock:job:mnist-mlp:bylease'));
      while ([...workers.acked.keys()].every((lease) => loggedAtKill.has(lease))) {
        if (Date.now() - killedAt >= 30_000) for (const p of procs) console.log(`--- ${p.port}\n${p.logs.slice(-25).join('\n')}`);
        assert.ok(Date.now() - killedAt < 30_000, `kill ${k + 1}: training resumes within 30 s`);
        await sleep(20);
      }
      takeovers.push(Date.now() - killedAt);
      procs[i] = await restarted;
      const next = parseHolder(await r.get('flock:leader'))!;
      assert.ok(next.token > owner.token, 'a newer fencing token');
    }
    // Then a gateway (a process that does not own the job): its worker loses its connection, the
    // process comes back on its port (as behind a load balancer), the worker reconnects and trains on;
    // the owner never stops. Worker i is connected to procs[i]. A SIGKILLed gateway sends no `bye`:
    // the owner ends its sessions when its heartbeat key runs out (heartbeat.ts), which frees the
    // worker's leases and id.
    const owner = parseHolder(await r.get('flock:leader'))!;
    const ownerProc = procs.find((p) => p.logs.some((l) => l.includes(`process ${owner.processId} serves the jobs`)));
    const g = procs.findIndex((p) => p !== ownerProc);
    assert.ok(ownerProc && g >= 0, 'the owner is one of ours, and a process that is not');
    const goneLines = (): number => ownerProc.logs.filter((l) => l.includes('is gone (no heartbeat for')).length;
    const goneBefore = goneLines();
    // Its worker has a session on the owner through it now (an acknowledgement just came that way).
    const ackedEarlier = workers.ackedBy[g]!;
    await until(() => workers.ackedBy[g]! > ackedEarlier, 30_000, `worker ${g} acknowledged before the gateway kill`);
    const ackedBefore = workers.ackedBy[g]!;
    const port = procs[g]!.port;
    await procs[g]!.stop('SIGKILL');
    const killedAt = Date.now();
    const restarting = startProcess(env, port).then((p) => {
      restartMs = Date.now() - killedAt;
      return p;
    });
    leftovers.push(() => restarting.then((p) => p.stop('SIGKILL')));
    while (workers.ackedBy[g]! < ackedBefore + 5 || goneMs === null) {
      if (goneMs === null && goneLines() > goneBefore) goneMs = Date.now() - killedAt;
      if (Date.now() - killedAt >= 30_000) for (const p of [...procs, ...(restartMs !== null ? [await restarting] : [])]) console.log(`--- ${p.port}\n${p.logs.slice(-25).join('\n')}`);
      assert.ok(Date.now() - killedAt < 30_000, `gateway kill: within 30 s its worker acknowledged 5 more updates (${workers.ackedBy[g]! - ackedBefore}) and the owner ended the dead gateway's sessions (${goneMs !== null})`);
      if (workers.ackedBy[g]! >= ackedBefore + 5 && gatewayBack === null) gatewayBack = Date.now() - killedAt;
      await sleep(20);
    }
    gatewayBack ??= Date.now() - killedAt;
    procs[g] = await restarting;
    assert.equal(parseHolder(await r.get('flock:leader'))!.token, owner.token, 'the owner kept its lease through a gateway kill');
    assert.ok(goneMs <= 3 * Number(env.FLOCK_LEADER_TTL_MS) + 2000, `the dead gateway's sessions ended within 3 leader TTLs (+2 s) of the kill (${goneMs} ms)`);
  } finally {
    supervisor.stop();
    await workers.stop();
    r.disconnect();
  }
  const audit = await auditLog(redis.url, 'mnist-mlp', workers.acked);
  for (const p of procs) await p.stop('SIGTERM');
  console.log(`owner kills (lease ${env.FLOCK_LEADER_TTL_MS} ms): takeover (kill -> next acknowledged update) ${takeovers.map((t) => (t / 1000).toFixed(2)).join(', ')} s; a gateway SIGKILLed and restarted: the owner ended its sessions ${((goneMs ?? NaN) / 1000).toFixed(2)} s after the kill (no heartbeat), the process was back in ${((restartMs ?? NaN) / 1000).toFixed(2)} s, its worker acknowledged 5 more updates ${((gatewayBack ?? NaN) / 1000).toFixed(2)} s after the kill; audit ${JSON.stringify(audit)}, acked ${workers.acked.size}, processes that exited by themselves (restarted) ${supervisor.restarts()}`);
  assert.equal(audit.lost, 0, 'no acknowledged update lost');
  assert.equal(audit.wrongVersion, 0);
  assert.equal(audit.doubledLeases, 0, 'none applied twice');
  assert.equal(audit.doubledShards, 0);
  assert.ok(audit.contiguous);
  assert.ok(Math.max(...takeovers) < 15_000, `takeover under 15 s (${takeovers})`);
});

test('owner stalled past its lease (SIGSTOP): steps down in place, its workers train on through the new owner; elected again, it reloads; 0 lost or doubled', { skip, timeout: 180_000 }, async () => {
  await redis?.stop();
  redis = await startRedis();
  const env = clusterEnv(redis, { FLOCK_LEADER_TTL_MS: '1500' });
  const procs: CoordinatorProcess[] = await Promise.all([startProcess(env), startProcess(env)]);
  // Worker w is connected to process w % 2.
  const workers = startWorkers(procs.map((p) => p.url), 4);
  const r = new Redis(redis.url);
  leftovers.push(() => procs.forEach((p) => p.proc.kill('SIGCONT')), () => Promise.all(procs.map((p) => p.stop('SIGKILL'))), () => workers.stop(), () => r.disconnect());
  const dump = (): void => procs.forEach((p) => console.log(`--- ${p.port}\n${p.logs.slice(-25).join('\n')}`));
  const until = async (what: string, ok: () => boolean | Promise<boolean>, ms: number): Promise<void> => {
    const since = Date.now();
    while (!(await ok())) {
      if (Date.now() - since >= ms) dump();
      assert.ok(Date.now() - since < ms, `${what} within ${ms / 1000} s`);
      await sleep(50);
    }
  };
  const owns = (p: CoordinatorProcess): number => p.logs.filter((l) => l.includes('serves the jobs')).length;
  let stalledMs = 0;
  let i = -1;
  try {
    await until('30 acknowledged updates', () => workers.acked.size >= 30, 60_000);
    const owner = parseHolder(await r.get('flock:leader'))!;
    i = procs.findIndex((p) => p.logs.some((l) => l.includes(`process ${owner.processId} serves the jobs`)));
    assert.ok(i >= 0, 'the owner is one of ours');
    const other = 1 - i;
    const mine = [0, 1, 2, 3].filter((w) => w % 2 === i);

    // The owner stalls (as in a long GC or evaluation pause) until the other process has taken over
    // and acknowledged an update past everything the stalled one logged.
    procs[i]!.proc.kill('SIGSTOP');
    const stoppedAt = Date.now();
    await until('a takeover', async () => (parseHolder(await r.get('flock:leader'))?.token ?? 0) > owner.token, 20_000);
    const loggedAtStop = new Set(await r.hkeys('flock:job:mnist-mlp:bylease'));
    await until('an update acknowledged by the new owner', () => [...workers.acked.keys()].some((l) => !loggedAtStop.has(l)), 30_000);
    procs[i]!.proc.kill('SIGCONT');
    stalledMs = Date.now() - stoppedAt;

    // It wakes up deposed: steps down instead of exiting, and relays its own workers.
    await until('the stalled owner to step down', () => procs[i]!.logs.some((l) => l.includes('stepped down:')), 20_000);
    const acksAt = mine.map((w) => workers.ackedBy[w]!);
    await until('10 more acknowledged updates for each worker of the deposed owner', () => mine.every((w, k) => workers.ackedBy[w]! >= acksAt[k]! + 10), 60_000);
    assert.equal(procs[i]!.proc.exitCode, null, 'the deposed owner is still running');
    assert.deepEqual(mine.map((w) => workers.disconnects[w]), mine.map(() => 0), 'its workers never lost their connections');
    assert.equal(owns(procs[i]!), 1, 'it does not serve the jobs now');

    // The new owner shuts down (handing the lease over): the deposed one is elected again and loads
    // the jobs afresh from Redis; its workers (same connections) train on.
    await procs[other]!.stop('SIGTERM');
    await until('the former owner to be elected again', () => owns(procs[i]!) === 2, 20_000);
    const acksAgain = mine.map((w) => workers.ackedBy[w]!);
    await until('10 more acknowledged updates for each of its workers after its re-election', () => mine.every((w, k) => workers.ackedBy[w]! >= acksAgain[k]! + 10), 60_000);
    assert.deepEqual(mine.map((w) => workers.disconnects[w]), mine.map(() => 0), 'still the same connections');
    assert.ok(procs[i]!.logs.some((l) => /job mnist-mlp: resumed from checkpoint v\d+/.test(l) && procs[i]!.logs.indexOf(l) > procs[i]!.logs.findIndex((x) => x.includes('stepped down:'))), 'the job was reopened from Redis after stepping down');
  } finally {
    await workers.stop();
    r.disconnect();
  }
  const audit = await auditLog(redis.url, 'mnist-mlp', workers.acked);
  for (const p of procs) await p.stop('SIGTERM');
  console.log(`owner stalled ${(stalledMs / 1000).toFixed(1)} s past its lease: stepped down in place and was elected again; acked ${workers.acked.size} (per worker ${workers.ackedBy.join('/')}, deposed owner's workers ${[0, 1, 2, 3].filter((w) => w % 2 === i).join(',')}), disconnects ${workers.disconnects.join('/')}, audit ${JSON.stringify(audit)}`);
  assert.equal(audit.lost, 0, 'no acknowledged update lost');
  assert.equal(audit.wrongVersion, 0);
  assert.equal(audit.doubledLeases, 0, 'none applied twice');
  assert.equal(audit.doubledShards, 0);
  assert.ok(audit.contiguous);
  await redis.stop();
  redis = null;
});
