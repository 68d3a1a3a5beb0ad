// Spot checks, pure: comparison of gradients, and a simulated run of 10 workers of which 2 return
// wrong but finite gradients (as if computed on shuffled labels): the checks catch >= 95% of them
// within 50 of their submissions, quarantine < 1% of honest workers, and once workers are trusted
// replicate < 10% of the leases. A replica push is answered by the checker, never applied.
// Replicas at the first worker's address only where FLOCK_SPOT_CHECK_SAME_ADDRESS allows it and both
// ids are verified; trust records restored from the store are the ones written, quarantine included.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../shared/clock.ts';
import { ErrorCode } from '../../shared/protocol/errors.ts';
import type { GradientPush, LeaseAck, WeightsPayload } from '../../shared/protocol/messages.ts';
import type { WorkerId } from '../leases/lease-manager.ts';
import { compareGradients } from './compare.ts';
import { checkProbability, DEFAULT_SPOT_CHECK_POLICY, SpotChecker, type TrustStore } from './spot-checker.ts';
import type { SameAddressReplicas } from './same-address.ts';
import { MemoryStateStore } from '../storage/memory-state-store.ts';
import { toleranceFor } from './tolerances.ts';
import { mulberry32 } from '../data/sharder.ts';
import { readFileSync } from 'node:fs';

const DIM = 2000;

/** Deterministic PRNG. */
const rng = mulberry32;
const normal = (r: () => number): number => Math.sqrt(-2 * Math.log(r() || 1e-12)) * Math.cos(2 * Math.PI * r());

/** The true gradient of a shard (what every honest worker computes, up to float noise). */
function trueGradient(epoch: number, shard: number): Float32Array {
  const r = rng(epoch * 100_003 + shard + 1);
  return Float32Array.from({ length: DIM }, () => normal(r) * 0.01);
}

test('compare: identical and float-noisy gradients agree; a scaled one, a different one, NaN and a length mismatch do not', () => {
  const tol = toleranceFor('wasm', 'wasm')!;
  const g = trueGradient(0, 1);
  const r = rng(5);
  const noisy = g.map((v) => v * (1 + 1e-6 * normal(r)));
  assert.ok(compareGradients(g, g, tol).agree);
  assert.ok(compareGradients(g, noisy, tol).agree);
  assert.equal(compareGradients(g, g.map((v) => v * 1.1), tol).agree, false, 'norm 10% off');
  assert.equal(compareGradients(g, trueGradient(0, 2), tol).agree, false);
  assert.equal(compareGradients(g, g.map((v, i) => (i === 3 ? NaN : v)), tol).agree, false);
  assert.equal(compareGradients(g, g.subarray(1), tol).agree, false);
  assert.equal(toleranceFor('wasm', 'webgpu'), null, 'unlike backends are never compared');
  assert.equal(checkProbability(0, 10), 1);
  assert.ok(Math.abs(checkProbability(10, 10) - 1 / 11) < 1e-12);
});

interface RunResult {
  caughtWithin: (number | null)[];
  honestQuarantined: number;
  replicatedLate: number;
  leasesLate: number;
  replicaApplied: number;
  /** Workers the checker reported quarantined (onQuarantined), in order. */
  told: string[];
  quarantined: string[];
}

function simulate(seed: number, rounds: number, store?: TrustStore): RunResult & { checker: SpotChecker; ids: WorkerId[] } {
  const clock = new FakeClock();
  const r = rng(seed);
  const N = 10;
  const wrong = new Set([0, 1]);
  const ids = Array.from({ length: N }, (_, i) => `w-${seed}-${i}` as WorkerId);
  const checker = new SpotChecker(clock, (w) => `10.0.0.${ids.indexOf(w)}`, undefined, r);
  if (store) checker.restore(store);
  for (const w of ids) checker.hello(w, { backend: 'wasm', runtime: 'browser' });
  const told: string[] = [];
  checker.onQuarantined = (w, why) => {
    assert.equal(why, checker.quarantineReason(w), 'told with the reason it shows');
    told.push(w);
  };
  const submissions = new Array<number>(N).fill(0);
  const caughtWithin: (number | null)[] = [null, null];
  let version = 0;
  let shard = 0;
  let replicatedLate = 0;
  let leasesLate = 0;
  let replicaApplied = 0;
  const weightsAt = (v: number): WeightsPayload => ({ version: v, specs: [{ name: 'w', shape: [DIM], dtype: 'float32' }], data: new Uint8Array(0) });
  const gradientOf = (i: number, epoch: number, s: number): Float32Array => {
    const g = trueGradient(epoch, s);
    if (!wrong.has(i)) return g.map((v) => v * (1 + 1e-6 * normal(r))); // float noise of another summation order
    // Shuffled labels: partly aligned with the true gradient, finite, of similar norm.
    return g.map((v) => 0.5 * v + 0.009 * normal(r));
  };
  const push = (leaseId: string, g: Float32Array, baseVersion: number): GradientPush => ({ leaseId, baseVersion, numSamples: 64, loss: 1, computeMs: 1, specs: [{ name: 'w', shape: [DIM], dtype: 'float32' }], data: new Uint8Array(g.buffer) });

  for (let round = 0; round < rounds; round++) {
    const late = round >= rounds / 2;
    // Workers ask in a random order each round (as they finish at different times).
    const order = Array.from({ length: N }, (_, i) => i).sort(() => r() - 0.5);
    for (const i of order) {
      const w = ids[i]!;
      if (checker.quarantineReason(w)) continue;
      clock.advance(10);
      if (late) leasesLate++;
      const replica = checker.replicaLease(w, 'job');
      if (replica && replica.ok) {
        if (late) replicatedLate++;
        const g = gradientOf(i, replica.lease.epoch, replica.lease.shardIndex);
        const ack = checker.takePush(w, push(replica.lease.leaseId, g, replica.lease.baseVersion));
        assert.ok(ack && ack.ok && ack.scale === 0, 'a replica push is answered by the checker and scales nothing');
        if (ack.ok && ack.status === 'applied') replicaApplied += 0;
      } else {
        const s = shard++;
        const lease: LeaseAck = { ok: true, lease: { leaseId: `L${seed}-${s}`, jobId: 'job', epoch: 0, shardIndex: s, baseVersion: version, deadlineAt: clock.now() + 1000, numSamples: 64, x: new Uint8Array(0), y: new Uint8Array(0) }, weights: weightsAt(version) };
        checker.leased(w, 'job', lease);
        const p = push(lease.lease.leaseId, gradientOf(i, 0, s), version);
        version++;
        checker.pushed(w, 'job', p, { ok: true, status: 'applied', version, staleness: 0, scale: 1 });
      }
      submissions[i]!++;
      // Quarantine is decided by whoever gives the deciding opinion: look at both wrong workers after each step.
      for (const k of wrong) if (caughtWithin[k] === null && checker.quarantineReason(ids[k]!)) caughtWithin[k] = submissions[k]!;
    }
  }
  if (process.env.DBG) console.log(JSON.stringify(checker.counts), ids.map((w) => JSON.stringify(checker.trust(w))).join("\n"));
  const honestQuarantined = ids.filter((w, i) => !wrong.has(i) && checker.quarantineReason(w)).length;
  return { caughtWithin, honestQuarantined, replicatedLate, leasesLate, replicaApplied, told, quarantined: ids.filter((w) => checker.quarantineReason(w)), checker, ids };
}

test('2 of 10 workers wrong: >= 95% caught within 50 submissions, < 1% of honest quarantined, < 10% replication once trusted', () => {
  const runs = 30;
  let caught = 0;
  let wrongTotal = 0;
  let honestQ = 0;
  let rep = 0;
  let leases = 0;
  const within: number[] = [];
  for (let seed = 1; seed <= runs; seed++) {
    const res = simulate(seed, 200);
    for (const c of res.caughtWithin) {
      wrongTotal++;
      if (c !== null && c <= 50) caught++;
      if (c !== null) within.push(c);
    }
    honestQ += res.honestQuarantined;
    rep += res.replicatedLate;
    leases += res.leasesLate;
  }
  within.sort((a, b) => a - b);
  const caughtShare = caught / wrongTotal;
  const honestShare = honestQ / (runs * 8);
  const replication = rep / leases;
  console.log(`# ${runs} runs: caught ${caught}/${wrongTotal} wrong workers within 50 submissions (median ${within[within.length >> 1]}, max ${within.at(-1)}); honest quarantined ${honestQ}/${runs * 8}; replication once trusted ${(replication * 100).toFixed(2)}% of leases`);
  assert.ok(caughtShare >= 0.95, `caught ${(caughtShare * 100).toFixed(1)}%`);
  assert.ok(honestShare < 0.01, `honest quarantined ${(honestShare * 100).toFixed(2)}%`);
  assert.ok(replication < 0.1, `replication ${(replication * 100).toFixed(2)}%`);
});

test('replica leases: same backend class and another address only; forged and another worker\'s replica pushes are refused', () => {
  const clock = new FakeClock();
  const addr: Record<string, string> = { a: '1.1.1.1', b: '1.1.1.1', c: '2.2.2.2', d: '3.3.3.3' };
  const checker = new SpotChecker(clock, (w) => addr[w] ?? w, undefined, () => 0);
  checker.hello('a' as WorkerId, { backend: 'wasm', runtime: 'browser' });
  checker.hello('b' as WorkerId, { backend: 'wasm', runtime: 'browser' });
  checker.hello('c' as WorkerId, { backend: 'webgpu', runtime: 'browser' });
  checker.hello('d' as WorkerId, { backend: 'cpu', runtime: 'node' });
  const g = trueGradient(0, 0);
  const lease: LeaseAck = { ok: true, lease: { leaseId: 'L1', jobId: 'job', epoch: 0, shardIndex: 0, baseVersion: 3, deadlineAt: 0, numSamples: 64, x: new Uint8Array(8), y: new Uint8Array(1) }, weights: { version: 3, specs: [], data: new Uint8Array(0) } };
  checker.leased('a' as WorkerId, 'job', lease);
  const p: GradientPush = { leaseId: 'L1', baseVersion: 3, numSamples: 64, loss: 1, computeMs: 1, specs: [], data: new Uint8Array(g.buffer) };
  checker.pushed('a' as WorkerId, 'job', p, { ok: true, status: 'applied', version: 4, staleness: 0, scale: 1 });
  assert.equal(checker.replicaLease('b' as WorkerId, 'job'), null, 'same address as the first worker');
  assert.equal(checker.replicaLease('c' as WorkerId, 'job'), null, 'another backend class');
  assert.equal(checker.replicaLease('d' as WorkerId, 'other-job'), null, 'another job');
  const r = checker.replicaLease('d' as WorkerId, 'job');
  assert.ok(r && r.ok && r.lease.baseVersion === 3 && r.lease.shardIndex === 0 && r.weights?.version === 3);
  const forged = checker.takePush('d' as WorkerId, { ...p, leaseId: 'spot-999-1' });
  assert.ok(forged && !forged.ok && forged.code === ErrorCode.UnknownLease);
  const stolen = checker.takePush('b' as WorkerId, { ...p, leaseId: r.lease.leaseId });
  assert.ok(stolen && !stolen.ok && stolen.code === ErrorCode.LeaseNotYours);
  assert.equal(checker.takePush('d' as WorkerId, { ...p, leaseId: 'L1' }), null, 'a normal lease goes the normal way');
  const ok = checker.takePush('d' as WorkerId, { ...p, leaseId: r.lease.leaseId });
  assert.ok(ok && ok.ok);
  assert.equal(checker.trust('a')!.creditSamples, 64, 'validated work is credited');
  assert.equal(checker.trust('d')!.creditSamples, 64);
  const replay = checker.takePush('d' as WorkerId, { ...p, leaseId: r.lease.leaseId });
  assert.ok(replay && !replay.ok && replay.code === ErrorCode.UnknownLease, 'a replayed replica push is refused');
  assert.equal(checker.trust('a')!.creditSamples, 64, 'and credits nothing');
});

test("a lease whose rows partly came from the worker's cache: the replica carries every row of the shard (read from the job), or the lease is not checked", () => {
  const addr: Record<string, string> = { a: '1.1.1.1', d: '3.3.3.3' };
  const full = { x: Uint8Array.from({ length: 4 * 8 }, (_, i) => i), y: Uint8Array.from([0, 1, 2, 3]) };
  const cached: LeaseAck = {
    ok: true,
    // 4 rows, only row 2 travelled (the others were in the worker's cache).
    lease: { leaseId: 'L2', jobId: 'job', epoch: 1, shardIndex: 5, baseVersion: 3, deadlineAt: 0, numSamples: 4, x: full.x.slice(16, 24), y: full.y.slice(2, 3), rowIds: Uint32Array.from([9, 4, 7, 1]), fresh: Uint32Array.from([2]) },
    weights: { version: 3, specs: [], data: new Uint8Array(0) },
  };
  const g = trueGradient(1, 5);
  const p: GradientPush = { leaseId: 'L2', baseVersion: 3, numSamples: 4, loss: 1, computeMs: 1, specs: [], data: new Uint8Array(g.buffer) };
  const asked: [string, number, number][] = [];
  for (const rows of [full, null]) {
    const checker = new SpotChecker(new FakeClock(), (w) => addr[w] ?? w, undefined, () => 0);
    checker.shardRows = (jobId, epoch, shard) => (asked.push([jobId, epoch, shard]), rows);
    checker.hello('a' as WorkerId, { backend: 'wasm', runtime: 'browser' });
    checker.hello('d' as WorkerId, { backend: 'wasm', runtime: 'browser' });
    checker.leased('a' as WorkerId, 'job', cached);
    checker.pushed('a' as WorkerId, 'job', p, { ok: true, status: 'applied', version: 4, staleness: 0, scale: 1 });
    const r = checker.replicaLease('d' as WorkerId, 'job');
    if (rows) {
      assert.ok(r && r.ok);
      assert.deepEqual([r.lease.numSamples, r.lease.x, r.lease.y, r.lease.fresh], [4, full.x, full.y, undefined]);
    } else assert.equal(r, null, 'no rows to replay: not checked');
  }
  assert.deepEqual(asked, [['job', 1, 5], ['job', 1, 5]]);
});

test('a quarantine is told once per worker (the coordinator then drops its buffered gradients)', () => {
  let total = 0;
  for (let seed = 1; seed <= 5; seed++) {
    const res = simulate(seed, 60);
    assert.deepEqual([...res.told].sort(), [...res.quarantined].sort(), `seed ${seed}`);
    total += res.told.length;
  }
  assert.ok(total >= 8, `only ${total} quarantines in 5 runs`);
});

/** One shard pushed by `first`, then offered as a replica to `second`: whether `second` got it. */
function replicaAtSameAddress(sameAddress: SameAddressReplicas, verified: (w: string) => boolean, address = '203.0.113.7'): { got: boolean; checker: SpotChecker } {
  const clock = new FakeClock();
  const checker = new SpotChecker(clock, () => address, { ...DEFAULT_SPOT_CHECK_POLICY, sameAddress }, () => 0, verified);
  for (const w of ['first', 'second']) checker.hello(w as WorkerId, { backend: 'wasm', runtime: 'browser' });
  const g = trueGradient(0, 0);
  const lease: LeaseAck = { ok: true, lease: { leaseId: 'L1', jobId: 'job', epoch: 0, shardIndex: 0, baseVersion: 0, deadlineAt: 0, numSamples: 64, x: new Uint8Array(8), y: new Uint8Array(1) }, weights: { version: 0, specs: [], data: new Uint8Array(0) } };
  checker.leased('first' as WorkerId, 'job', lease);
  const p: GradientPush = { leaseId: 'L1', baseVersion: 0, numSamples: 64, loss: 1, computeMs: 1, specs: [], data: new Uint8Array(g.buffer) };
  checker.pushed('first' as WorkerId, 'job', p, { ok: true, status: 'applied', version: 1, staleness: 0, scale: 1 });
  const r = checker.replicaLease('second' as WorkerId, 'job');
  if (r?.ok) assert.ok(checker.takePush('second' as WorkerId, { ...p, leaseId: r.lease.leaseId })?.ok);
  return { got: r !== null, checker };
}

test('same address: no replica by default, even between verified identities; allowed by the setting only between two verified identities, and with a list only at a listed address', () => {
  const both = (): boolean => true;
  assert.equal(replicaAtSameAddress({ kind: 'off' }, both).got, false, 'secure by default');
  const any = replicaAtSameAddress({ kind: 'any' }, both);
  assert.equal(any.got, true, 'allowed: two workers with credentials behind one NAT');
  assert.equal(any.checker.trust('first')?.creditSamples, 64, 'and their agreeing work is credited');
  assert.equal(any.checker.trust('second')?.creditSamples, 64);
  assert.equal(replicaAtSameAddress({ kind: 'any' }, (w) => w === 'first').got, false, 'the replica worker has no verified identity');
  assert.equal(replicaAtSameAddress({ kind: 'any' }, (w) => w === 'second').got, false, 'the first worker has no verified identity');
  assert.equal(replicaAtSameAddress({ kind: 'any' }, () => false).got, false);
  const lab: SameAddressReplicas = { kind: 'list', addresses: ['203.0.113.7'] };
  assert.equal(replicaAtSameAddress(lab, both).got, true, 'the listed lab address');
  assert.equal(replicaAtSameAddress(lab, both, '::ffff:203.0.113.7').got, true, 'the same address written as IPv4-mapped IPv6');
  assert.equal(replicaAtSameAddress(lab, both, '198.51.100.2').got, false, 'an address not on the list');
});

test('trust is durable: records restored from the store keep validated counts, credit and quarantine; each decided check writes its records in one batch', () => {
  const store = new MemoryStateStore();
  let batches = 0;
  let written = 0;
  const counting: TrustStore = {
    putTrust: (rows) => {
      batches++;
      written += rows.length;
      store.putTrust(rows);
    },
    listTrust: () => store.listTrust(),
  };
  const res = simulate(3, 120, counting);
  const before = res.checker;
  const decided = before.counts.agreed + before.counts.faults + before.counts.inconclusive;
  assert.ok(res.quarantined.length >= 1, 'the run quarantined someone');
  assert.ok(batches > 0 && batches <= decided + before.counts.mismatches, `${batches} batches for ${decided} decided checks`);
  assert.ok(written >= batches, 'a batch carries every record the check changed');
  // A restart: a new checker (nothing in memory) restores from the same store.
  const after = new SpotChecker(new FakeClock(), (w) => w, undefined, () => 0);
  assert.equal(after.restore(store), store.listTrust().length);
  for (const w of res.ids) {
    assert.deepEqual(after.trust(w), before.trust(w), `record of ${w}`);
    assert.equal(after.quarantineReason(w), before.quarantineReason(w), `quarantine of ${w}`);
  }
  const trusted = res.ids.filter((w) => (before.trust(w)?.validated ?? 0) >= DEFAULT_SPOT_CHECK_POLICY.trustAfter);
  assert.ok(trusted.length > 0, 'some honest workers earned trust');
  for (const w of trusted) assert.ok(checkProbability(after.trust(w)!.validated, DEFAULT_SPOT_CHECK_POLICY.trustAfter) < 1, `${w} is not checked every time after the restart`);
  // A takeover by a process that held older records in memory: restore replaces them.
  const stale = new SpotChecker(new FakeClock(), (w) => w, undefined, () => 0);
  stale.restore(new MemoryStateStore());
  stale.restore(store);
  for (const w of res.quarantined) assert.ok(stale.quarantineReason(w as WorkerId));
});

test('a store that refuses the write: the check still decides, the records stay in memory, and the loss is counted and told', () => {
  const told: number[] = [];
  const failing: TrustStore = { putTrust: () => { throw new Error('FENCED token 1 is stale'); }, listTrust: () => [] };
  const clock = new FakeClock();
  const checker = new SpotChecker(clock, (w) => w, undefined, () => 0);
  checker.restore(failing);
  checker.onUnsaved = (_e, n) => told.push(n);
  for (const w of ['a', 'b']) checker.hello(w as WorkerId, { backend: 'wasm', runtime: 'browser' });
  const g = trueGradient(0, 0);
  const lease: LeaseAck = { ok: true, lease: { leaseId: 'L1', jobId: 'job', epoch: 0, shardIndex: 0, baseVersion: 0, deadlineAt: 0, numSamples: 64, x: new Uint8Array(8), y: new Uint8Array(1) }, weights: { version: 0, specs: [], data: new Uint8Array(0) } };
  checker.leased('a' as WorkerId, 'job', lease);
  const p: GradientPush = { leaseId: 'L1', baseVersion: 0, numSamples: 64, loss: 1, computeMs: 1, specs: [], data: new Uint8Array(g.buffer) };
  checker.pushed('a' as WorkerId, 'job', p, { ok: true, status: 'applied', version: 1, staleness: 0, scale: 1 });
  const r = checker.replicaLease('b' as WorkerId, 'job');
  assert.ok(r?.ok);
  assert.ok(checker.takePush('b' as WorkerId, { ...p, leaseId: r.lease.leaseId })?.ok);
  assert.equal(checker.trust('a')?.creditSamples, 64);
  assert.equal(checker.counts.unsaved, 2);
  assert.deepEqual(told, [2]);
});

test('the bands against the measured figures (bench/results/spot-check-tolerances.json): 10x margin over every honest pair, every wrong result outside', () => {
  type Figures = { minCosine: number; maxCosine: number; minRelNorm?: number; maxRelNorm: number; n: number };
  const file = JSON.parse(readFileSync(new URL('../../bench/results/spot-check-tolerances.json', import.meta.url), 'utf8')) as { summary: Record<string, Figures>; browser: { overall: Record<string, Figures> } };
  const check = (pair: string, f: Figures, tol: { minCosine: number; maxRelNorm: number }): void => {
    assert.ok(f.n > 0, pair);
    if (pair.includes('shuffled')) {
      assert.ok(f.maxCosine < tol.minCosine, `${pair}: a wrong result with cosine ${f.maxCosine} would pass`);
      if (f.minRelNorm !== undefined) assert.ok(f.minRelNorm > tol.maxRelNorm, `${pair}: a wrong result's norm is off by only ${f.minRelNorm}`);
    } else {
      assert.ok(1 - f.minCosine <= (1 - tol.minCosine) / 10, `${pair}: honest 1 - cosine ${1 - f.minCosine} is within 10x of the band`);
      assert.ok(f.maxRelNorm <= tol.maxRelNorm / 10, `${pair}: honest norm ${f.maxRelNorm} is within 10x of the band`);
    }
  };
  for (const [pair, f] of Object.entries(file.summary)) check(pair, f, toleranceFor('wasm', 'cpu')!);
  const browser = Object.entries(file.browser.overall);
  assert.ok(browser.length >= 10, 'the browser figures are there');
  for (const [pair, f] of browser) check(pair, f, toleranceFor(pair.startsWith('cpu|') ? 'cpu' : 'webgpu', pair.startsWith('cpu|') ? 'wasm' : 'webgl')!);
});
