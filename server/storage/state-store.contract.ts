// The StateStore contract: one suite, run against every implementation (state-store.test.ts).
// `reopen` (when given) closes the store and opens the same durable state again.

import { test as baseTest } from 'node:test';
import assert from 'node:assert/strict';
import type { StateStore, StoredTrust, UpdateRecord } from './state-store.ts';
import type { JobConfig } from '../jobs/job-config.ts';

const config = { name: 'j', description: '', batchSize: 8 } as unknown as JobConfig;

const upd = (version: number, over: Partial<UpdateRecord> = {}): UpdateRecord => ({
  jobId: 'a', version, leaseId: `l${version}`, workerId: 'w1', epoch: 0, shard: version - 1, baseVersion: version - 1,
  lr: 0.001, staleness: 0, samples: 8, loss: 1.5, at: 1000 + version, gradient: new Uint8Array([version, 2, 3, 4]), ...over,
});

const trust = (workerId: string, over: Partial<StoredTrust> = {}): StoredTrust => ({
  workerId, validated: 3, totalValidated: 7, faults: 1, creditSamples: 448, lastFault: 'shard 4 of epoch 1 at v9: cosine 0.310', quarantined: null, updatedAt: 1000, ...over,
});

type Maybe<T> = T | Promise<T>;

/** `open` gives a fresh, empty store; `reopen` (when given) closes one and opens its durable state again. */
export function runStateStoreContract(name: string, open: () => Maybe<StateStore>, reopen?: (s: StateStore) => Maybe<StateStore>, opts: { skip?: string | false } = {}): void {
  const test = (title: string, fn: () => Promise<void>): void => {
    baseTest(title, { skip: opts.skip ?? false }, fn);
  };
  test(`${name}: jobs round trip in creation order`, async () => {
    const s = await open();
    s.putJob({ id: 'b', config, createdAt: 2 });
    s.putJob({ id: 'a', config, createdAt: 1 });
    assert.deepEqual(s.listJobs().map((j) => j.id), ['a', 'b']);
    assert.equal(s.listJobs()[0]!.config.name, 'j');
    s.close();
  });

  test(`${name}: update log is ordered, idempotency lookups by lease, duplicates refused`, async () => {
    const s = await open();
    for (const v of [1, 2, 3]) s.appendUpdate(upd(v));
    assert.throws(() => s.appendUpdate(upd(2, { leaseId: 'other' })), 'same version twice');
    assert.throws(() => s.appendUpdate(upd(4, { leaseId: 'l1' })), 'same lease twice');
    assert.equal(s.lastVersion('a'), 3);
    assert.equal(s.lastVersion('nope'), null);
    assert.equal(s.updateByLease('a', 'l2')!.version, 2);
    assert.equal(s.updateByLease('a', 'zz'), null);
    const after = s.updatesAfter('a', 1);
    assert.deepEqual(after.map((u) => u.version), [2, 3]);
    assert.deepEqual([...after[0]!.gradient!], [2, 2, 3, 4]);
    assert.equal(after[1]!.lr, 0.001);
    s.close();
  });

  test(`${name}: compaction drops gradients but keeps the ledger`, async () => {
    const s = await open();
    for (const v of [1, 2, 3]) s.appendUpdate(upd(v, { shard: v === 3 ? 0 : v - 1 }));
    s.compactUpdates('a', 2);
    const all = s.updatesAfter('a', 0);
    assert.deepEqual(all.map((u) => u.gradient === null), [true, true, false]);
    const ledger = s.ledger('a', 0);
    assert.equal(ledger.get(0), 2);
    assert.equal(ledger.get(1), 1);
    assert.equal(s.ledger('a', 1).size, 0);
    await s.durable();
    s.close();
  });

  test(`${name}: a combined update's records keep their weights (0 without a gradient, n on the sum) across a reopen`, async () => {
    let s = await open();
    s.appendUpdate(upd(1));
    // One batch, all or nothing: a duplicate anywhere in it writes none of it.
    assert.throws(() => s.appendUpdates([upd(2, { step: 1, scale: 1, weight: 0, gradient: null }), upd(3, { leaseId: 'l1', step: 1, scale: 1, weight: 2 })]));
    assert.equal(s.lastVersion('a'), 1, 'nothing of a refused batch');
    s.appendUpdates([upd(2, { step: 1, scale: 1, weight: 0, gradient: null }), upd(3, { step: 1, scale: 1, weight: 2 })]);
    await s.durable();
    if (reopen) s = await reopen(s);
    const all = s.updatesAfter('a', 0);
    assert.deepEqual(all.map((u) => u.weight ?? null), [null, 0, 2]);
    assert.deepEqual(all.map((u) => u.gradient === null), [false, true, false]);
    assert.equal(s.updateByLease('a', 'l2')!.step, 1, 'a covered lease is found by its id');
    assert.equal(s.ledger('a', 0).size, 3, 'each lease completes its shard');
    s.close();
  });

  test(`${name}: updates marked excluded read back so, keep their gradient and their place in the ledger`, async () => {
    const s = await open();
    for (const v of [1, 2, 3, 4]) s.appendUpdate(upd(v, { step: 1, scale: 0.5 }));
    s.excludeUpdates('a', [2, 4]);
    s.excludeUpdates('a', []);
    s.excludeUpdates('nope', [1]);
    const all = s.updatesAfter('a', 0);
    assert.deepEqual(all.map((u) => u.excluded ?? false), [false, true, false, true]);
    assert.deepEqual(all.map((u) => u.scale), [0.5, 0.5, 0.5, 0.5], 'the discount is kept');
    assert.equal(s.updateByLease('a', 'l2')!.excluded, true);
    assert.deepEqual([...all[1]!.gradient!], [2, 2, 3, 4]);
    assert.equal(s.ledger('a', 0).size, 4, 'an excluded record still completes its shard');
    assert.equal(s.lastVersion('a'), 4);
    await s.durable();
    s.close();
  });

  test(`${name}: leases put, replace, delete, list`, async () => {
    const s = await open();
    const l = { jobId: 'a', leaseId: 'x', workerId: 'w', epoch: 0, shard: 3, baseVersion: 5, grantedAt: 10, deadlineAt: 20 };
    s.putLease(l);
    s.putLease({ ...l, leaseId: 'y', grantedAt: 11 });
    s.putLease({ ...l, deadlineAt: 99 });
    assert.deepEqual(s.listLeases('a').map((x) => [x.leaseId, x.deadlineAt]), [['x', 99], ['y', 20]]);
    s.deleteLease('a', 'x');
    assert.deepEqual(s.listLeases('a').map((x) => x.leaseId), ['y']);
    assert.deepEqual(s.listLeases('b'), []);
    s.close();
  });

  test(`${name}: metrics and workers`, async () => {
    const s = await open();
    s.appendMetric({ jobId: 'a', version: 10, testLoss: 0.5, testAccuracy: 0.9, testMae: null, testRmse: null, at: 5, ms: 12 });
    s.appendMetric({ jobId: 'a', version: 20, testLoss: 0.4, testAccuracy: 0.92, testMae: null, testRmse: null, at: 6, ms: 12 });
    assert.deepEqual(s.metrics('a').map((m) => m.version), [10, 20]);
    const w = { workerId: 'w1', firstSeenAt: 1, lastSeenAt: 2, capabilities: { backend: 'wasm' }, leasesDone: 3, accepted: 2, refused: 1, msPerSample: 0.25 };
    s.putWorker(w);
    s.putWorker({ ...w, lastSeenAt: 9 });
    assert.deepEqual(s.getWorker('w1'), { ...w, lastSeenAt: 9 });
    assert.equal(s.getWorker('nobody'), null);
    assert.equal(s.listWorkers().length, 1);
    s.close();
  });

  test(`${name}: worker records are deleted by id; unknown ids are ignored`, async () => {
    const s = await open();
    const w = { workerId: 'w1', firstSeenAt: 1, lastSeenAt: 2, capabilities: null, leasesDone: 0, accepted: 0, refused: 0, msPerSample: null };
    for (const id of ['w1', 'w2', 'w3']) s.putWorker({ ...w, workerId: id });
    assert.equal(s.deleteWorkers(['w1', 'w3', 'nobody']), 2);
    assert.equal(s.deleteWorkers([]), 0);
    assert.equal(s.getWorker('w1'), null);
    assert.deepEqual(s.listWorkers().map((x) => x.workerId), ['w2']);
    // A deleted id can be written again (a worker that comes back and completes a lease).
    s.putWorker({ ...w, workerId: 'w1', leasesDone: 1 });
    assert.equal(s.getWorker('w1')?.leasesDone, 1);
    await s.durable();
    s.close();
  });

  test(`${name}: trust records are written in batches, each replacing the worker's previous one`, async () => {
    const s = await open();
    assert.deepEqual(s.listTrust(), []);
    s.putTrust([trust('w1'), trust('w2', { quarantined: 'spot checks found 2 of its results wrong', faults: 2 })]);
    s.putTrust([]);
    s.putTrust([trust('w1', { validated: 4, totalValidated: 8, creditSamples: 512, updatedAt: 2000 })]);
    const byId = new Map(s.listTrust().map((r) => [r.workerId, r]));
    assert.equal(byId.size, 2);
    assert.deepEqual(byId.get('w1'), trust('w1', { validated: 4, totalValidated: 8, creditSamples: 512, updatedAt: 2000 }));
    assert.equal(byId.get('w2')?.quarantined, 'spot checks found 2 of its results wrong');
    assert.equal(byId.get('w2')?.faults, 2);
    // A read is a copy: changing it changes nothing stored.
    (s.listTrust()[0] as { faults: number }).faults = 99;
    assert.ok(s.listTrust().every((r) => r.faults !== 99));
    await s.durable();
    s.close();
  });

  test(`${name}: flush resolves once the writes are durable`, async () => {
    const s = await open();
    s.appendUpdate(upd(1));
    await s.durable();
    await s.durable();
    assert.equal(s.lastVersion('a'), 1);
    s.close();
  });

  if (reopen) {
    test(`${name}: everything survives close and reopen`, async () => {
      let s = await open();
      s.putJob({ id: 'a', config, createdAt: 1 });
      s.appendUpdate(upd(1));
      s.appendUpdate(upd(2, { step: 2, scale: 1 }));
      s.appendUpdate(upd(3, { step: 2, scale: 1 }));
      s.excludeUpdates('a', [2]);
      s.putLease({ jobId: 'a', leaseId: 'x', workerId: 'w', epoch: 0, shard: 3, baseVersion: 5, grantedAt: 10, deadlineAt: 20 });
      s.putLease({ jobId: 'a', leaseId: 'gone', workerId: 'w', epoch: 0, shard: 4, baseVersion: 5, grantedAt: 11, deadlineAt: 20 });
      s.deleteLease('a', 'gone');
      s.appendMetric({ jobId: 'a', version: 1, testLoss: 0.5, testAccuracy: 0.9, testMae: null, testRmse: null, at: 5, ms: 12 });
      s.putWorker({ workerId: 'w1', firstSeenAt: 1, lastSeenAt: 2, capabilities: { backend: 'wasm' }, leasesDone: 3, accepted: 2, refused: 1, msPerSample: null });
      s.putWorker({ workerId: 'pruned', firstSeenAt: 1, lastSeenAt: 2, capabilities: null, leasesDone: 0, accepted: 0, refused: 0, msPerSample: null });
      s.deleteWorkers(['pruned']);
      s.putTrust([trust('w1', { faults: 2, validated: 0, quarantined: 'spot checks found 2 of its results wrong' }), trust('w2', { faults: 0, lastFault: null })]);
      await s.durable();
      s = await reopen(s);
      assert.equal(s.listJobs().length, 1);
      assert.equal(s.lastVersion('a'), 3);
      assert.deepEqual([...s.updateByLease('a', 'l1')!.gradient!], [1, 2, 3, 4]);
      assert.deepEqual(s.updatesAfter('a', 0).map((u) => u.excluded ?? false), [false, true, false], 'the exclusion mark survives');
      assert.equal(s.listLeases('a').length, 1);
      assert.equal(s.metrics('a').length, 1);
      assert.deepEqual(s.ledger('a', 0), new Map([[0, 1], [1, 1], [2, 1]]));
      assert.deepEqual(s.getWorker('w1')?.capabilities, { backend: 'wasm' });
      assert.equal(s.getWorker('pruned'), null, 'a deleted worker record stays deleted');
      const kept = new Map(s.listTrust().map((r) => [r.workerId, r]));
      assert.deepEqual(kept.get('w1'), trust('w1', { faults: 2, validated: 0, quarantined: 'spot checks found 2 of its results wrong' }), 'a quarantine survives');
      assert.deepEqual(kept.get('w2'), trust('w2', { faults: 0, lastFault: null }));
      s.close();
    });
  }
}

/** The log's step and discount columns round trip; durable() resolves once written (every store). */
export function runStepColumnsContract(name: string, open: () => StateStore, reopen?: (s: StateStore) => StateStore): void {
  baseTest(`${name}: an update's step and discount round trip; old records read back as null`, async () => {
    let s = open();
    s.appendUpdate(upd(1));
    s.appendUpdate(upd(2, { step: 1, scale: 0.5 }));
    await s.durable();
    if (reopen) s = reopen(s);
    const [a, b] = s.updatesAfter('a', 0);
    assert.equal(a!.step ?? null, null);
    assert.equal(a!.scale ?? null, null);
    assert.equal(b!.step, 1);
    assert.equal(b!.scale, 0.5);
    assert.equal(s.updateByLease('a', 'l2')!.step, 1);
    s.close();
  });
}
