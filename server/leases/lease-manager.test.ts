import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../shared/clock.ts';
import { ErrorCode } from '../../shared/protocol/errors.ts';
import { mulberry32 } from '../data/sharder.ts';
import { LeaseManager, type Lease, type LedgerSnapshot, type WorkerId } from './lease-manager.ts';

const A = 'w-a' as WorkerId;
const B = 'w-b' as WorkerId;
const TIMEOUT = 1000;

function make(shardsPerEpoch: number, maxEpochs = Infinity, snapshot?: LedgerSnapshot, idPrefix = 'L'): { lm: LeaseManager; clock: FakeClock } {
  const clock = new FakeClock();
  let n = 0;
  const lm = new LeaseManager({ shardsPerEpoch, maxEpochs, clock, newId: () => `${idPrefix}${++n}` }, snapshot);
  return { lm, clock };
}

function mustGrant(lm: LeaseManager, w: WorkerId, v = 0): Lease {
  const l = lm.grant(w, v, TIMEOUT);
  assert.ok(l, 'expected a lease');
  return l;
}

function claimOk(lm: LeaseManager, id: string, w: WorkerId): Lease {
  const c = lm.claim(id, w);
  assert.equal(c.ok, true, c.ok ? '' : c.code);
  return (c as { ok: true; lease: Lease }).lease;
}

test('grants shards in order with the deadline; two epochs open at most, then null', () => {
  const { lm, clock } = make(3);
  const l0 = mustGrant(lm, A, 7);
  assert.deepEqual({ ...l0 }, { id: 'L1', workerId: A, epoch: 0, shard: 0, baseVersion: 7, grantedAt: clock.now(), deadlineAt: clock.now() + TIMEOUT });
  const shards = [l0, mustGrant(lm, A), mustGrant(lm, B)].map((l) => `${l.epoch}/${l.shard}`);
  assert.deepEqual(shards, ['0/0', '0/1', '0/2']);
  assert.deepEqual(lm.shardCounts(), { done: 0, leased: 3, waiting: 0 });
  // Every shard of epoch 0 is leased: epoch 1 opens early.
  const next = [mustGrant(lm, A), mustGrant(lm, A), mustGrant(lm, A)].map((l) => `${l.epoch}/${l.shard}`);
  assert.deepEqual(next, ['1/0', '1/1', '1/2']);
  assert.equal(lm.currentEpoch, 0);
  assert.equal(lm.grant(A, 0, TIMEOUT), null);
  assert.equal(lm.outstanding.length, 6);
});

test('expiry happens on the sweep after the deadline, not before; the shard is reissued first', () => {
  const { lm, clock } = make(4);
  const l0 = mustGrant(lm, A);
  clock.advance(500);
  const l1 = mustGrant(lm, B);
  clock.advance(TIMEOUT - 501);
  assert.deepEqual(lm.sweep(), []);
  clock.advance(1); // exactly l0's deadline
  const late = lm.sweep();
  assert.deepEqual(late.map((l) => l.id), [l0.id]);
  assert.deepEqual(lm.shardCounts(), { done: 0, leased: 1, waiting: 3 });
  assert.deepEqual(lm.sweep(), [], 'an expired lease is swept once');
  const again = mustGrant(lm, B);
  assert.equal(again.shard, 0, 'the expired shard goes to the front');
  assert.notEqual(again.id, l0.id);
  clock.advance(500);
  assert.deepEqual(lm.sweep().map((l) => l.id), [l1.id]);
  assert.equal(mustGrant(lm, A).shard, 1);
});

test('release and releaseWorker requeue at the front', () => {
  const { lm } = make(5);
  const a0 = mustGrant(lm, A);
  const b1 = mustGrant(lm, B);
  const a2 = mustGrant(lm, A);
  assert.equal(lm.release(b1.id)?.id, b1.id);
  assert.equal(lm.release(b1.id), null, 'second release is a no-op');
  assert.equal(lm.release('nope'), null);
  assert.deepEqual(lm.shardCounts(), { done: 0, leased: 2, waiting: 3 });
  assert.deepEqual(lm.releaseWorker(A).map((l) => l.shard).sort(), [a0.shard, a2.shard]);
  assert.deepEqual(lm.shardCounts(), { done: 0, leased: 0, waiting: 5 });
  const order = [0, 1, 2, 3, 4].map(() => mustGrant(lm, B).shard);
  assert.deepEqual([...order].sort(), [0, 1, 2, 3, 4]);
  // Requeued shards (0, 1, 2) come before the never-leased ones (3, 4).
  assert.deepEqual(order.slice(3), [3, 4]);
  // A released lease can no longer be claimed.
  assert.equal(lm.claim(b1.id, B).ok, false);
});

test('claim refuses an unknown lease, another worker, a shard already done', () => {
  const { lm } = make(2);
  const l = mustGrant(lm, A);
  const c1 = lm.claim('L999', A);
  assert.equal(!c1.ok && c1.code, ErrorCode.UnknownLease);
  const c2 = lm.claim(l.id, B);
  assert.equal(!c2.ok && c2.code, ErrorCode.LeaseNotYours);
  const lease = claimOk(lm, l.id, A);
  assert.deepEqual(lm.complete(lease), []);
  assert.deepEqual(lm.shardCounts(), { done: 1, leased: 0, waiting: 1 });
  const c3 = lm.claim(l.id, A);
  assert.equal(!c3.ok && c3.code, ErrorCode.UnknownLease, 'a completed lease is forgotten');
  // Completing twice does not count twice.
  assert.deepEqual(lm.complete(lease), []);
  assert.equal(lm.shardCounts().done, 1);
});

test('a late push from an expired lease counts if the shard is not done; the replacement is void', () => {
  const { lm, clock } = make(3);
  const old = mustGrant(lm, A);
  clock.advance(TIMEOUT);
  assert.equal(lm.sweep().length, 1);
  const replacement = mustGrant(lm, B);
  assert.equal(replacement.shard, old.shard);
  const late = claimOk(lm, old.id, A);
  assert.deepEqual(lm.complete(late), []);
  assert.deepEqual(lm.shardCounts(), { done: 1, leased: 0, waiting: 2 });
  const c = lm.claim(replacement.id, B);
  assert.equal(!c.ok && c.code, ErrorCode.ShardAlreadyDone);
  assert.equal(lm.outstanding.length, 0);
  // The void replacement can't be released into the queue again.
  assert.equal(lm.release(replacement.id), null);
  assert.deepEqual(lm.shardCounts(), { done: 1, leased: 0, waiting: 2 });
});

test('a late push whose shard was never reissued takes it out of the queue', () => {
  const { lm, clock } = make(3);
  const old = mustGrant(lm, A);
  clock.advance(TIMEOUT);
  lm.sweep();
  assert.deepEqual(lm.shardCounts(), { done: 0, leased: 0, waiting: 3 });
  lm.complete(claimOk(lm, old.id, A));
  assert.deepEqual(lm.shardCounts(), { done: 1, leased: 0, waiting: 2 });
  assert.deepEqual([mustGrant(lm, B).shard, mustGrant(lm, B).shard], [1, 2]);
});

test('the on-time holder wins; the expired lease then gets SHARD_ALREADY_DONE', () => {
  const { lm, clock } = make(2);
  const old = mustGrant(lm, A);
  clock.advance(TIMEOUT);
  lm.sweep();
  const fresh = mustGrant(lm, B);
  lm.complete(claimOk(lm, fresh.id, B));
  const c = lm.claim(old.id, A);
  assert.equal(!c.ok && c.code, ErrorCode.ShardAlreadyDone);
});

test('completing the last shard returns the epoch; epochs complete in order', () => {
  const { lm } = make(2);
  const e0 = [mustGrant(lm, A), mustGrant(lm, A)];
  const e1 = [mustGrant(lm, B), mustGrant(lm, B)];
  assert.deepEqual(e1.map((l) => l.epoch), [1, 1]);
  // Epoch 1 finishes first, but is reported only once epoch 0 is done too.
  assert.deepEqual(lm.complete(e1[0]!), []);
  assert.deepEqual(lm.complete(e1[1]!), []);
  assert.equal(lm.currentEpoch, 0);
  assert.deepEqual(lm.complete(e0[1]!), []);
  assert.equal(lm.epochFraction, 0.5);
  assert.deepEqual(lm.complete(e0[0]!), [0, 1]);
  assert.equal(lm.currentEpoch, 2);
  assert.deepEqual(lm.shardCounts(), { done: 0, leased: 0, waiting: 2 });
  assert.equal(mustGrant(lm, A).epoch, 2);
});

test('maxEpochs: no lease beyond the last epoch; exhausted once it is done', () => {
  const { lm } = make(2, 1);
  const l = [mustGrant(lm, A), mustGrant(lm, B)];
  assert.equal(lm.grant(A, 0, TIMEOUT), null, 'epoch 1 is beyond maxEpochs');
  assert.equal(lm.exhausted, false);
  assert.deepEqual(lm.complete(l[0]!), []);
  assert.deepEqual(lm.complete(l[1]!), [0]);
  assert.equal(lm.exhausted, true);
  assert.equal(lm.grant(A, 0, TIMEOUT), null, 'no epoch is reopened after exhaustion');
  assert.equal(lm.grant(B, 0, TIMEOUT), null);
  assert.equal(lm.exhausted, true);
  assert.equal(lm.outstanding.length, 0);
});

test('an exhausted ledger stays exhausted across snapshot/restore', () => {
  const { lm } = make(1, 2);
  lm.complete(mustGrant(lm, A));
  lm.complete(mustGrant(lm, A));
  assert.equal(lm.exhausted, true);
  const { lm: back } = make(1, 2, JSON.parse(JSON.stringify(lm.snapshot())) as LedgerSnapshot);
  assert.equal(back.exhausted, true);
  assert.equal(back.grant(A, 0, TIMEOUT), null);
});

test('snapshot/restore keeps done shards; leased ones come back as waiting', () => {
  const { lm } = make(4);
  const ls = [0, 1, 2, 3, 4, 5].map(() => mustGrant(lm, A)); // all of epoch 0 + two of epoch 1
  lm.complete(ls[1]!);
  lm.complete(ls[3]!);
  lm.complete(ls[4]!);
  const snap = lm.snapshot();
  assert.deepEqual(snap, { epochs: [{ epoch: 0, done: [1, 3] }, { epoch: 1, done: [0] }] });
  // A new process: lease ids from another generator (as randomUUID would give).
  const { lm: back } = make(4, Infinity, JSON.parse(JSON.stringify(snap)) as LedgerSnapshot, 'R');
  assert.deepEqual(back.snapshot(), snap);
  assert.equal(back.currentEpoch, 0);
  assert.deepEqual(back.shardCounts(), { done: 2, leased: 0, waiting: 2 });
  const regrant = [0, 1, 2, 3, 4].map(() => mustGrant(back, B)).map((l) => `${l.epoch}/${l.shard}`);
  assert.deepEqual(regrant, ['0/0', '0/2', '1/1', '1/2', '1/3']);
  assert.equal(back.grant(B, 0, TIMEOUT), null);
  // A lease from before the restart is unknown.
  const c = back.claim(ls[0]!.id, A);
  assert.equal(!c.ok && c.code, ErrorCode.UnknownLease);
});

test('property: every shard is completed exactly once per epoch over random interleavings', () => {
  let lateAccepted = 0;
  let refusedDone = 0;
  for (let seed = 1; seed <= 100; seed++) {
    const rnd = mulberry32(seed);
    const shards = 1 + Math.floor(rnd() * 7);
    const maxEpochs = 1 + Math.floor(rnd() * 3);
    const { lm, clock } = make(shards, maxEpochs);
    const workers = ['w0', 'w1', 'w2'] as WorkerId[];
    const held: Lease[] = [];
    const expiredHeld: Lease[] = [];
    const completions = new Map<string, number>();
    const completedEpochs: number[] = [];
    let steps = 0;
    while (!lm.exhausted) {
      assert.ok(++steps < 20_000, `seed ${seed}: no progress`);
      const r = rnd();
      if (r < 0.35) {
        const w = workers[Math.floor(rnd() * workers.length)]!;
        const l = lm.grant(w, 0, TIMEOUT);
        if (l) held.push(l);
      } else if (r < 0.6 && held.length > 0) {
        const l = held.splice(Math.floor(rnd() * held.length), 1)[0]!;
        const c = lm.claim(l.id, l.workerId);
        if (c.ok) {
          const key = `${l.epoch}/${l.shard}`;
          completions.set(key, (completions.get(key) ?? 0) + 1);
          completedEpochs.push(...lm.complete(c.lease));
        } else if (c.code === ErrorCode.UnknownLease) {
          // A void replacement is forgotten once its epoch closes.
          assert.ok(lm.exhausted || l.epoch < lm.currentEpoch, `seed ${seed}: lease of open epoch ${l.epoch} unknown`);
        } else {
          assert.equal(c.code, ErrorCode.ShardAlreadyDone, `seed ${seed}`);
          refusedDone++;
        }
      } else if (r < 0.7 && expiredHeld.length > 0) {
        // A worker whose lease expired pushes late.
        const l = expiredHeld.splice(Math.floor(rnd() * expiredHeld.length), 1)[0]!;
        const c = lm.claim(l.id, l.workerId);
        if (c.ok) {
          lateAccepted++;
          const key = `${l.epoch}/${l.shard}`;
          completions.set(key, (completions.get(key) ?? 0) + 1);
          completedEpochs.push(...lm.complete(c.lease));
        } else {
          const closed = lm.exhausted || l.epoch < lm.currentEpoch;
          assert.ok(c.code === ErrorCode.ShardAlreadyDone || (closed && c.code === ErrorCode.UnknownLease), `seed ${seed}: ${c.code}`);
        }
      } else if (r < 0.8) {
        clock.advance(Math.floor(rnd() * TIMEOUT));
        for (const l of lm.sweep()) {
          const i = held.findIndex((h) => h.id === l.id);
          if (i >= 0) expiredHeld.push(...held.splice(i, 1));
        }
      } else if (r < 0.87 && held.length > 0) {
        const l = held.splice(Math.floor(rnd() * held.length), 1)[0]!;
        lm.release(l.id);
      } else if (r < 0.9) {
        const w = workers[Math.floor(rnd() * workers.length)]!;
        const gone = new Set(lm.releaseWorker(w).map((l) => l.id));
        for (let i = held.length - 1; i >= 0; i--) if (gone.has(held[i]!.id)) held.splice(i, 1);
      }
      // Invariant: leased + waiting + done = shards in the current epoch.
      const c = lm.shardCounts();
      if (!lm.exhausted) assert.equal(c.done + c.leased + c.waiting, shards, `seed ${seed}`);
    }
    assert.deepEqual(completedEpochs, Array.from({ length: maxEpochs }, (_, i) => i), `seed ${seed}`);
    assert.equal(completions.size, shards * maxEpochs, `seed ${seed}`);
    for (const [k, n] of completions) assert.equal(n, 1, `seed ${seed}: shard ${k} completed ${n} times`);
    assert.equal(lm.grant(workers[0]!, 0, TIMEOUT), null);
  }
  // The interleavings did exercise late pushes and void replacements.
  assert.ok(lateAccepted > 5, `late pushes accepted: ${lateAccepted}`);
  assert.ok(refusedDone > 5, `void replacements refused: ${refusedDone}`);
});
