// Spot checks over the wire (real coordinator, port 0, addresses via a trusted X-Forwarded-For):
// a new worker's lease is replicated to a worker at another address on the same weights and shard;
// agreeing results are credited to both (/api/workers counts validated work only); a worker whose
// results two others contradict is quarantined and told why; replica pushes never move the model;
// two real worker loops (real gradients, the replica's older weights) agree and both earn credit.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { io as ioClient } from 'socket.io-client';
import { startCoordinator, type Coordinator } from '../coordinator.ts';
import { loadMnist, sliceDataset } from '../data/dataset.ts';
import { initNodeBackend } from '../../shared/training/node-backend.ts';
import { ErrorCode } from '../../shared/protocol/errors.ts';
import { PROTOCOL_VERSION, type GradientPush, type LeaseAck, type PushAck } from '../../shared/protocol/messages.ts';
import type { FlockSocket } from '../../shared/training/link.ts';
import { sizeOf } from '../../shared/codec/tensor-codec.ts';

let c: Coordinator;
let dataDir: string;
const sockets: FlockSocket[] = [];

before(async () => {
  await initNodeBackend('wasm');
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'flock-spot-'));
  c = await startCoordinator({
    port: 0, host: '127.0.0.1', dataDir, clientDir: path.join(dataDir, 'none'), demo: 'mnist-mlp', store: 'memory',
    demoOverrides: { batchSize: 64, stop: { maxEpochs: 1000, targetAccuracy: null }, evalEveryVersions: 1_000_000 },
    log: { info() {}, warn() {} }, dataset: sliceDataset(await loadMnist(), 640, 100),
    door: { trustProxy: { kind: 'loopback' } },
  });
});

after(async () => {
  for (const s of sockets) s.close();
  await c.close();
  await rm(dataDir, { recursive: true, force: true });
});

async function worker(address: string): Promise<{ s: FlockSocket; id: string }> {
  const s: FlockSocket = ioClient(c.url, { transports: ['websocket'], reconnection: false, forceNew: true, extraHeaders: { 'x-forwarded-for': address } });
  sockets.push(s);
  await new Promise<void>((resolve, reject) => {
    s.once('connect', () => resolve());
    s.once('connect_error', reject);
  });
  const h = await s.timeout(5000).emitWithAck('worker:hello', { protocol: PROTOCOL_VERSION, capabilities: { backend: 'wasm', runtime: 'node' } });
  assert.ok(h.ok);
  return { s, id: h.workerId };
}

/** A stand-in gradient: a deterministic function of the shard (what honest workers agree on), or not. */
function gradientFor(ack: Extract<LeaseAck, { ok: true }>, wrong = false): GradientPush {
  const specs = c.registry.all()[0]!.descriptor().trainableSpecs;
  const n = specs.reduce((k, t) => k + sizeOf(t.shape), 0);
  const g = new Float32Array(n);
  for (let i = 0; i < n; i++) g[i] = Math.sin(i * 0.37 + ack.lease.shardIndex * 1.3 + ack.lease.epoch) * 1e-3 * (wrong ? ((i * 7919) % 13) - 6 : 1);
  return { leaseId: ack.lease.leaseId, baseVersion: ack.lease.baseVersion, numSamples: ack.lease.numSamples, loss: 1, computeMs: 1, specs, data: g.buffer };
}

const lease = async (s: FlockSocket): Promise<Extract<LeaseAck, { ok: true }>> => {
  const r = await s.timeout(5000).emitWithAck('lease:request', { cachedVersion: null });
  assert.ok(r.ok, JSON.stringify(r).slice(0, 200));
  return r;
};
const push = (s: FlockSocket, p: GradientPush): Promise<PushAck> => s.timeout(5000).emitWithAck('gradient:push', p);

test('a new worker\'s result is replicated at another address on the same weights and shard; agreement credits both', async () => {
  const job = c.registry.all()[0]!;
  const a = await worker('198.18.0.1');
  const b = await worker('198.18.0.2');
  const same = await worker('198.18.0.1'); // the same address as a: never a's checker
  const la = await lease(a.s);
  assert.ok((await push(a.s, gradientFor(la))).ok);
  const v = job.currentVersion;
  const other = await lease(same.s);
  assert.ok(!other.lease.leaseId.startsWith('spot-'), 'no replica for a worker at the same address');
  await push(same.s, gradientFor(other));
  const lb = await lease(b.s);
  assert.ok(lb.lease.leaseId.startsWith('spot-'), `b gets a replica lease, got ${lb.lease.leaseId}`);
  assert.equal(lb.lease.shardIndex, la.lease.shardIndex);
  assert.equal(lb.lease.baseVersion, la.lease.baseVersion);
  assert.equal(lb.weights?.version, la.lease.baseVersion, 'the weights the first worker had');
  const v1 = job.currentVersion;
  const res = await push(b.s, gradientFor(lb));
  assert.ok(res.ok && res.scale === 0);
  assert.equal(job.currentVersion, v1, 'a replica push is not applied');
  assert.ok(v1 >= v);
  const list = (await (await fetch(`${c.url}/api/workers`, { headers: { Authorization: `Bearer ${c.adminToken}` } })).json()) as { workerId: string; validatedSamples: number }[];
  assert.equal(list.find((w) => w.workerId === a.id)?.validatedSamples, la.lease.numSamples);
  assert.equal(list.find((w) => w.workerId === b.id)?.validatedSamples, la.lease.numSamples);
  assert.equal(list.find((w) => w.workerId === same.id)?.validatedSamples, 0, 'unchecked work earns no credit');
});

test('a worker two others contradict twice is quarantined, its lease and push refusals say why, and none of its gradients still waits in the buffer', async () => {
  const job = c.registry.all()[0]!;
  const liar = await worker('198.18.1.1');
  const spare = await lease(liar.s); // held across the quarantine, as a prefetched lease would be
  const honest = [await worker('198.18.1.2'), await worker('198.18.1.3')];
  // Give the honest ones a validated record first (third opinions come from validated workers).
  for (let round = 0; round < 2; round++) {
    const l0 = await lease(honest[0]!.s);
    await push(honest[0]!.s, gradientFor(l0));
    const l1 = await lease(honest[1]!.s);
    await push(honest[1]!.s, gradientFor(l1));
  }
  for (let k = 0; k < 6 && !c.spotChecker.quarantineReason(liar.id as never); k++) {
    const l = await lease(liar.s);
    await push(liar.s, gradientFor(l, true));
    for (const h of honest) {
      const r = await h.s.timeout(5000).emitWithAck('lease:request', { cachedVersion: null });
      if (r.ok) await push(h.s, gradientFor(r));
    }
  }
  const why = c.spotChecker.quarantineReason(liar.id as never);
  assert.ok(why && /spot checks found 2 of its results wrong/.test(why), String(why));
  const refused = await liar.s.timeout(5000).emitWithAck('lease:request', { cachedVersion: null });
  assert.ok(!refused.ok && refused.code === ErrorCode.Quarantined && refused.message.includes('spot checks'), JSON.stringify(refused));
  // The default job buffers 6 gradients per step: what the liar had waiting there was dropped at
  // its quarantine (marked in the log), and a lease it still holds brings nothing back in. (Run
  // alone, both its gradients wait in the first buffer; after the first test, the order of pushes
  // may have stepped them in already, and then there is nothing to drop.)
  const version = job.currentVersion;
  if (!spare.lease.leaseId.startsWith('spot-')) {
    const late = await push(liar.s, gradientFor(spare, true));
    assert.ok(!late.ok && late.code === ErrorCode.Quarantined, JSON.stringify(late));
    assert.equal(job.leasesHeldBy(liar.id as never), 0, 'its lease was handed back for another worker');
  }
  const mine = c.state.updatesAfter(job.id, 0).filter((u) => u.workerId === liar.id);
  const dropped = mine.filter((u) => u.excluded === true);
  console.log(`# liar: ${mine.length} gradients logged, ${dropped.length} dropped from the buffer at its quarantine (v${version})`);
  assert.ok(mine.length >= 2);
  assert.deepEqual(mine.filter((u) => u.excluded !== true && (u.step ?? u.version) > version).map((u) => u.version), [], 'none still waits for a step');
});

test('two real worker loops at two addresses: real gradients of replicated shards agree, both earn credit, no fault', { timeout: 60_000 }, async () => {
  const { SocketLink } = await import('../../shared/training/link.ts');
  const { WorkerLoop } = await import('../../shared/training/worker-loop.ts');
  const { systemClock } = await import('../../shared/clock.ts');
  const job = c.registry.all()[0]!;
  const agreed0 = c.spotChecker.counts.agreed;
  const faults0 = c.spotChecker.counts.faults;
  const loops = ['198.18.2.1', '198.18.2.2'].map((address) => {
    const s: FlockSocket = ioClient(c.url, { transports: ['websocket'], forceNew: true, extraHeaders: { 'x-forwarded-for': address } });
    sockets.push(s);
    return new WorkerLoop(new SocketLink(s, 15_000), { clock: systemClock, capabilities: { backend: 'wasm', runtime: 'node' }, maxLeases: 40, minBackoffMs: 20, maxBackoffMs: 200 });
  });
  const v0 = job.currentVersion;
  await Promise.all(loops.map((l) => l.run()));
  const credits = loops.map((l) => c.spotChecker.trust(l.identity)?.creditSamples ?? 0);
  console.log(`# two loops: ${c.spotChecker.counts.agreed - agreed0} checks agreed, ${c.spotChecker.counts.faults - faults0} faults, credit ${credits.join(' / ')} samples, ${job.currentVersion - v0} updates applied`);
  assert.ok(c.spotChecker.counts.agreed - agreed0 >= 3, 'replicated shards were computed by the other loop and agreed');
  // (Checks left pending by the earlier tests' stand-in gradients may be decided now, against those workers.)
  assert.deepEqual(loops.map((l) => c.spotChecker.trust(l.identity)?.faults ?? 0), [0, 0], 'honest real gradients are never at fault');
  assert.ok(credits.every((x) => x > 0), `both earn credit: ${credits.join(', ')}`);
  assert.ok(job.currentVersion > v0);
});
