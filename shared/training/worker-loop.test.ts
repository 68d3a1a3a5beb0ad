// The worker loop against an in-memory coordinator: tensors do not leak over 100 leases, weights are
// downloaded only when the version changes, refusals are counted, and stop() hands the lease back.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from './tf.ts';
import { initNodeBackend } from './node-backend.ts';
import { WorkerLoop } from './worker-loop.ts';
import { packWeights, trainableSpecs } from './model.ts';
import { systemClock } from '../clock.ts';
import { ErrorCode, fail } from '../protocol/errors.ts';
import type { CoordinatorLink } from './link.ts';
import type { GradientPush, JobDescriptor, LeaseAck, PushAck } from '../protocol/messages.ts';

function tinyTopology(): unknown {
  const m = tf.sequential({ layers: [tf.layers.flatten({ inputShape: [4, 4, 1], name: 'f' }), tf.layers.dense({ units: 3, activation: 'softmax', name: 'out' })] });
  const topo = m.toJSON(null, false);
  m.dispose();
  return topo;
}

async function fakeCoordinator(opts: { bumpVersionEvery: number; refuseEvery?: number; rateLimitEvery?: number; transientEvery?: number }) {
  const topology = tinyTopology();
  const model = await tf.models.modelFromJSON({ modelTopology: topology } as unknown as tf.io.ModelJSON);
  const weights = await packWeights(model);
  const job: JobDescriptor = {
    id: 'j', name: 'tiny', description: '', modelTopology: topology, task: 'classification', loss: 'categoricalCrossentropy', fromLogits: false, batchSize: 8,
    data: { featureShape: [4, 4, 1], features: { dtype: 'uint8', scale: 1 / 255 }, target: { kind: 'classes', numClasses: 3, dtype: 'uint8' } }, trainableSpecs: trainableSpecs(model),
  };
  model.dispose();
  let version = 0;
  let leases = 0;
  const pushes: GradientPush[] = [];
  const released: string[] = [];
  let weightsSent = 0;
  const link: CoordinatorLink = {
    connected: true,
    hello: async () => ({ ok: true, workerId: 'w1', serverTime: Date.now() }),
    getJob: async () => ({ ok: true, job }),
    requestLease: async (req): Promise<LeaseAck> => {
      leases++;
      if (leases % opts.bumpVersionEvery === 0) version++;
      const send = req.cachedVersion !== version;
      if (send) weightsSent++;
      return {
        ok: true,
        lease: { leaseId: `l${leases}`, jobId: 'j', epoch: 0, shardIndex: leases, baseVersion: version, deadlineAt: Date.now() + 10_000, numSamples: 8, x: new Uint8Array(8 * 16).fill(7), y: new Uint8Array(8).map((_, i) => i % 3) },
        weights: send ? { version, specs: weights.specs, data: weights.data.buffer as ArrayBuffer } : null,
      };
    },
    pushGradient: async (p): Promise<PushAck> => {
      pushes.push(p);
      // The door's refusal of every n-th push attempt (RATE_LIMITED): the loop sends the same gradient again.
      if (opts.rateLimitEvery && pushes.length % opts.rateLimitEvery === 0) return fail(ErrorCode.RateLimited, 'slow down', 10);
      if (opts.transientEvery && pushes.length % opts.transientEvery === 0) return fail(ErrorCode.Internal, 'the coordinator owning this job changed; retry', 10);
      if (opts.refuseEvery && pushes.length % opts.refuseEvery === 0) return fail(ErrorCode.Stale, 'too stale');
      return { ok: true, status: 'applied', version, staleness: 0, scale: 1 };
    },
    releaseLease: async (id) => {
      released.push(id);
      return { ok: true };
    },
    refuseJob: async () => ({ ok: true }),
    onConnect: () => {},
    onDisconnect: () => {},
    onJobUpdate: () => {},
    close: () => {},
  };
  return { link, pushes, released, weightsSent: () => weightsSent, job };
}

test('100 leases: numTensors stable, weights only on version change, refusals counted', async () => {
  await initNodeBackend('wasm');
  const fc = await fakeCoordinator({ bumpVersionEvery: 10, refuseEvery: 25 });
  // Warm-up run (model built, kernels initialised), then measure across 100 more leases.
  const warm = new WorkerLoop(fc.link, { clock: systemClock, capabilities: { backend: 'wasm', runtime: 'node' }, maxLeases: 5 });
  await warm.run();
  const before = tf.memory().numTensors;
  const loop = new WorkerLoop(fc.link, { clock: systemClock, capabilities: { backend: 'wasm', runtime: 'node' }, maxLeases: 100 });
  await loop.run();
  const after = tf.memory().numTensors;
  assert.equal(after, before, `tensors leaked: ${before} -> ${after}`);
  assert.equal(loop.stats.shardsDone, 100);
  assert.equal(loop.stats.refused, 4);
  assert.equal(loop.stats.refusedByCode[ErrorCode.Stale], 4);
  assert.equal(loop.stats.accepted, 96);
  // Gradient payloads: exact specs, one float per trainable parameter, finite.
  const last = fc.pushes.at(-1)!;
  assert.deepEqual(last.specs, fc.job.trainableSpecs);
  const g = new Float32Array(last.data as ArrayBuffer);
  assert.equal(g.length, 16 * 3 + 3);
  assert.ok(g.every(Number.isFinite));
  assert.ok(g.some((v) => v !== 0));
  // 105 leases over versions 0..10: weights sent once per version per loop, not per lease.
  assert.ok(fc.weightsSent() <= 13, `weights sent ${fc.weightsSent()} times`);
});

test('stop() hands the current lease back at once', async () => {
  await initNodeBackend('wasm');
  const fc = await fakeCoordinator({ bumpVersionEvery: 1000 });
  let loop: WorkerLoop | null = null;
  let stopped: Promise<void> | null = null;
  loop = new WorkerLoop(fc.link, {
    clock: systemClock,
    capabilities: { backend: 'wasm', runtime: 'node' },
    beforePush: (lease) => {
      if (lease.leaseId === 'l3') stopped = loop!.stop();
    },
  });
  await loop.run();
  await stopped;
  assert.deepEqual(fc.released, ['l3']);
  assert.equal(fc.pushes.length, 2, 'the lease in hand at stop() is not pushed');
});

for (const [what, fault] of [
  ['refused at the door (RATE_LIMITED)', { rateLimitEvery: 3 }],
  ['answered with a transient INTERNAL (a retry time: the cluster owner changed)', { transientEvery: 4 }],
] as const) {
  test(`a push ${what} is sent again, not lost`, async () => {
    await initNodeBackend('wasm');
    const fc = await fakeCoordinator({ bumpVersionEvery: 1000, ...fault });
    const loop = new WorkerLoop(fc.link, { clock: systemClock, capabilities: { backend: 'wasm', runtime: 'node' }, maxLeases: 12 });
    await loop.run();
    assert.equal(loop.stats.accepted, 12, 'every gradient accepted in the end');
    assert.equal(loop.stats.refused, 0);
    const ids = fc.pushes.map((p) => p.leaseId);
    assert.equal(new Set(ids).size, 12);
    assert.ok(ids.length > 12, `${ids.length} push attempts for 12 leases`);
  });
}
