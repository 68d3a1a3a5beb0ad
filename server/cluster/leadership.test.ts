// Leadership through Redis: one owner at a time, a new owner within the lease time after the old
// one stops renewing, and the old owner's writes refused by the store (stale fencing token); the
// old owner is told, steps down (writes refused locally), and can win a later term afresh.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { Leadership } from './leadership.ts';
import { FencedError, RedisStateStore } from '../storage/redis-state-store.ts';
import { redisPerFile } from '../storage/testing/redis-server.ts';

const { skip, server } = redisPerFile();

const upd = (version: number) => ({
  jobId: 'j', version, leaseId: `l${version}`, workerId: 'w', epoch: 0, shard: version, baseVersion: version - 1,
  lr: 0.1, staleness: 0, samples: 8, loss: null, at: version, gradient: new Uint8Array([version]),
});

test('one owner at a time; a stalled owner is replaced and fenced off', { skip, timeout: 20_000 }, async () => {
  const prefix = 'lead1';
  const conns = [new Redis(server().url), new Redis(server().url)];
  const stores = [await RedisStateStore.open(server().url, { prefix }), await RedisStateStore.open(server().url, { prefix })];
  const elected: (number | null)[] = [null, null];
  const lost: number[] = [];
  const electedAt: number[] = [0, 0];
  const mk = (i: 0 | 1) =>
    new Leadership({
      redis: conns[i]!, prefix, processId: `p${i}`, ttlMs: 400, pollMs: 50,
      onElected: async (t) => {
        elected[i] = t;
        electedAt[i] = Date.now();
        await stores[i]!.resume(t);
      },
      onLost: (t) => lost.push(t),
    });
  const fencedTokens: (number | null)[] = [];
  stores[0]!.onFenced = (e) => fencedTokens.push(e.token);
  const a = mk(0);
  a.start();
  await a.elected;
  while (elected[0] === null) await new Promise((r) => setTimeout(r, 10));
  const b = mk(1);
  b.start();
  await new Promise((r) => setTimeout(r, 600));
  assert.equal(elected[1], null, 'B must not lead while A renews');
  assert.equal((await b.leader())?.processId, 'p0');

  // A stalls (a long GC pause, SIGSTOP): it stops renewing but still believes it leads.
  await a.stop(false);
  const stalledAt = Date.now();
  while (elected[1] === null) await new Promise((r) => setTimeout(r, 10));
  const takeoverMs = electedAt[1]! - stalledAt;
  assert.ok(takeoverMs < 400 + 50 + 200, `takeover took ${takeoverMs} ms`);
  assert.ok(elected[1]! > elected[0]!, 'the new token is larger');

  // The stalled A wakes up and writes with its old token: refused. B's writes go through.
  stores[0]!.appendUpdate(upd(1));
  await assert.rejects(stores[0]!.durable(), FencedError);
  stores[1]!.appendUpdate(upd(1));
  await stores[1]!.durable();
  const fresh = await RedisStateStore.open(server().url, { prefix });
  assert.equal(fresh.lastVersion('j'), 1);
  assert.equal(fresh.updatesAfter('j', 0).length, 1);
  fresh.close();
  // A is told its term's write was refused, with the token it carried: it steps down, and from then
  // on its writes are refused here, before Redis sees them.
  assert.deepEqual(fencedTokens, [elected[0]]);
  stores[0]!.depose();
  assert.throws(() => stores[0]!.appendUpdate(upd(2)), FencedError);

  await b.stop(true);
  assert.equal(await b.leader(), null, 'a graceful stop hands the lease back');
  // A wins a new term: the refusal of its old term is forgotten and its mirror is what Redis holds.
  const firstToken = elected[0]!;
  const a2 = mk(0);
  a2.start();
  while (elected[0] === firstToken) await new Promise((r) => setTimeout(r, 10));
  await a2.elected;
  assert.ok(elected[0]! > elected[1]!, 'a newer token again');
  assert.equal(stores[0]!.lastVersion('j'), 1, "B's update, reloaded");
  stores[0]!.appendUpdate(upd(2));
  await stores[0]!.durable();
  await a2.stop(true);
  for (const s of stores) s.close();
  for (const c of conns) c.disconnect();
});
