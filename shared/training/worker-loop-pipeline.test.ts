// The pipelined loop against an in-memory coordinator: every lease is applied exactly once even
// when an ack is lost (the push is sent again and answered 'duplicate'), the next lease is asked for
// behind the push (so it carries the weights that include it), tensors do not leak, and the
// negotiated encodings are used both ways.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from './tf.ts';
import { initNodeBackend } from './node-backend.ts';
import { WorkerLoop } from './worker-loop.ts';
import { packWeights, trainableSpecs } from './model.ts';
import { systemClock } from '../clock.ts';
import type { CoordinatorLink } from './link.ts';
import type { GradientPush, JobDescriptor, LeaseAck, PushAck } from '../protocol/messages.ts';
import { decodeVector, encodeVector, tensorSizes, type Encoding, type WeightEncoding } from '../codec/compression.ts';

function tinyTopology(): unknown {
  const m = tf.sequential({ layers: [tf.layers.flatten({ inputShape: [4, 4, 1], name: 'f' }), tf.layers.dense({ units: 3, activation: 'softmax', name: 'out' })] });
  const topo = m.toJSON(null, false);
  m.dispose();
  return topo;
}

interface Options {
  loseAckOf?: ReadonlySet<string>;
  gradients?: Encoding;
  weights?: WeightEncoding;
  ackDelayMs?: number;
  /** `local` leases; the version steps once this many pushes are buffered (as the coordinator's buffered rule). */
  localBuffer?: number;
  /** Lease answers arrive this late (granted at once, as the coordinator does). */
  leaseDelayMs?: number;
  /** Called as each push arrives (before it is applied). */
  onPush?: (p: GradientPush) => void;
}

async function fakeCoordinator(opts: Options = {}) {
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
  let buffered = 0;
  const stalenessAtPush: number[] = [];
  const released: string[] = [];
  const granted: string[] = [];
  const applied = new Map<string, number>();
  const pushes: GradientPush[] = [];
  const events: string[] = [];
  const lost = new Set(opts.loseAckOf ?? []);
  let codecs: readonly string[] | undefined;
  const link: CoordinatorLink = {
    connected: true,
    hello: async (req) => {
      codecs = req.capabilities.codecs;
      return { ok: true, workerId: 'w1', serverTime: Date.now() };
    },
    getJob: async () => ({ ok: true, job }),
    requestLease: async (req): Promise<LeaseAck> => {
      leases++;
      events.push(`lease@v${version}`);
      const send = req.cachedVersion !== version;
      const w = opts.weights ?? 'f32';
      const data = w === 'f32' ? weights.data.slice().buffer : encodeVector(w, weights.data, tensorSizes(weights.specs));
      granted.push(`l${leases}`);
      const base = version;
      if (opts.leaseDelayMs) await new Promise((r) => setTimeout(r, opts.leaseDelayMs));
      return {
        ok: true,
        lease: {
          leaseId: `l${leases}`, jobId: 'j', epoch: 0, shardIndex: leases, baseVersion: base, deadlineAt: Date.now() + 10_000, numSamples: 8,
          x: new Uint8Array(8 * 16).map((_, i) => (i * 37 + leases) % 256), y: new Uint8Array(8).map((_, i) => (i + leases) % 3),
          ...(opts.gradients ? { gradientEncoding: opts.gradients, topkRatio: 0.2 } : {}),
          ...(opts.localBuffer ? { local: { steps: 2, batchSize: 4, optimizer: { kind: 'sgd' as const, learningRate: 0.1 } } } : {}),
        },
        weights: send ? { version: base, specs: weights.specs, data, ...(w !== 'f32' ? { encoding: w } : {}) } : null,
      };
    },
    pushGradient: async (p): Promise<PushAck> => {
      opts.onPush?.(p);
      pushes.push(p);
      // The coordinator applies synchronously on arrival (as the real one does), whatever happens to the ack.
      const first = !applied.has(p.leaseId);
      let stepped = true;
      if (first) {
        stalenessAtPush.push(version - p.baseVersion);
        if (opts.localBuffer) {
          buffered++;
          stepped = buffered >= opts.localBuffer;
          if (stepped) buffered = 0;
        }
        if (stepped) version++;
        applied.set(p.leaseId, stepped ? version : version + 1);
        events.push(`push ${p.leaseId}`);
      }
      if (opts.ackDelayMs) await new Promise((r) => setTimeout(r, opts.ackDelayMs));
      if (first && lost.has(p.leaseId)) throw new Error('operation has timed out');
      return { ok: true, status: first ? (stepped ? 'applied' : 'buffered') : 'duplicate', version: applied.get(p.leaseId)!, staleness: 0, scale: 1 };
    },
    releaseLease: async (leaseId) => {
      released.push(leaseId);
      return { ok: true };
    },
    refuseJob: async () => ({ ok: true }),
    onConnect: () => {},
    onDisconnect: () => {},
    onJobUpdate: () => {},
    close: () => {},
  };
  /** Another worker's push completes a step. */
  const externalStep = (): void => {
    version++;
    buffered = 0;
  };
  return { link, pushes, applied, events, job, codecs: () => codecs, stalenessAtPush, released, granted, externalStep };
}

test('pipelined: 60 leases applied exactly once with two lost acks; no tensor leak', async () => {
  await initNodeBackend('wasm');
  const fc = await fakeCoordinator({ loseAckOf: new Set(['l7', 'l31']), ackDelayMs: 2 });
  const opts = { clock: systemClock, capabilities: { backend: 'wasm', runtime: 'node' }, pipeline: true, minBackoffMs: 1, maxBackoffMs: 5 } as const;
  await new WorkerLoop(fc.link, { ...opts, maxLeases: 5 }).run(); // warm-up: model built, kernels ready
  const before = tf.memory().numTensors;
  const fc2 = await fakeCoordinator({ loseAckOf: new Set(['l7', 'l31']), ackDelayMs: 2 });
  const loop = new WorkerLoop(fc2.link, { ...opts, maxLeases: 60 });
  await loop.run();
  assert.equal(tf.memory().numTensors, before, 'tensors leaked');
  // Every lease handed out was pushed and applied once; the two whose ack was lost were sent again.
  const granted = fc2.events.filter((e) => e.startsWith('lease')).length;
  assert.equal(fc2.applied.size, 60);
  assert.ok(granted <= 61, `${granted} leases granted for 60 pushes`);
  const byLease = new Map<string, number>();
  for (const p of fc2.pushes) byLease.set(p.leaseId, (byLease.get(p.leaseId) ?? 0) + 1);
  assert.equal(byLease.get('l7'), 2);
  assert.equal(byLease.get('l31'), 2);
  assert.equal([...byLease.values()].filter((n) => n === 1).length, 58);
  assert.equal(loop.stats.shardsDone, 60);
  assert.equal(loop.stats.accepted, 60);
});

test('pipelined: the next lease is asked for behind the push, so it carries the version that includes it', async () => {
  await initNodeBackend('wasm');
  const fc = await fakeCoordinator({ ackDelayMs: 20 });
  const loop = new WorkerLoop(fc.link, { clock: systemClock, capabilities: { backend: 'wasm', runtime: 'node' }, pipeline: true, maxLeases: 10 });
  await loop.run();
  // lease@v0, push l1, lease@v1, push l2, lease@v2 ...: each lease after the push before it.
  const seq = fc.events.slice(0, 8);
  assert.deepEqual(seq, ['lease@v0', 'push l1', 'lease@v1', 'push l2', 'lease@v2', 'push l3', 'lease@v3', 'push l4']);
});

test('negotiated encodings: int8 weights decoded, top-k gradients with error feedback pushed', async () => {
  await initNodeBackend('wasm');
  const fc = await fakeCoordinator({ weights: 'int8', gradients: 'topk' });
  const loop = new WorkerLoop(fc.link, { clock: systemClock, capabilities: { backend: 'wasm', runtime: 'node' }, maxLeases: 6 });
  await loop.run();
  assert.deepEqual(fc.codecs(), ['f32', 'f16', 'int8', 'topk']);
  const sizes = tensorSizes(fc.job.trainableSpecs);
  const n = sizes.reduce((a, b) => a + b, 0);
  const k = Math.ceil(n * 0.2);
  for (const p of fc.pushes) {
    assert.equal(p.encoding, 'topk');
    const bytes = p.data as Uint8Array;
    assert.equal(bytes.byteLength, 4 + k * 4 + ((k * 2 + 3) & ~3));
    const d = decodeVector('topk', bytes, sizes);
    assert.ok(d.ok);
    assert.equal(d.values.filter((v) => v !== 0).length <= k, true);
  }
  // Error feedback: a coordinate left out of one push shows up in a later one.
  const sent = fc.pushes.map((p) => { const d = decodeVector('topk', p.data as Uint8Array, sizes); return d.ok ? d.values : new Float32Array(n); });
  const everSent = new Set<number>();
  for (const v of sent) v.forEach((x, i) => x !== 0 && everSent.add(i));
  assert.ok(everSent.size > k, `only ${everSent.size} distinct coordinates in ${sent.length} pushes of ${k}`);
  // A worker announcing f32 only is what an older worker looks like.
  const fc2 = await fakeCoordinator();
  await new WorkerLoop(fc2.link, { clock: systemClock, capabilities: { backend: 'wasm', runtime: 'node' }, maxLeases: 1, codecs: ['f32'] }).run();
  assert.deepEqual(fc2.codecs(), ['f32']);
  assert.equal(fc2.pushes[0]!.encoding, undefined);
});

test('prefetch with local leases: a lease asked for before a step is handed back and asked for again, so no push is computed on weights a step behind', async () => {
  await initNodeBackend('wasm');
  const fc = await fakeCoordinator({ localBuffer: 2 });
  let n = 0;
  // Every fifth lease, another worker completes a step while this one computes.
  const beforePush = (): void => {
    if (++n % 5 === 0) fc.externalStep();
  };
  const base = { clock: systemClock, capabilities: { backend: 'wasm', runtime: 'node' }, prefetch: true, maxLeases: 20, beforePush } as const;
  for (const pipeline of [false, true]) {
    const before = fc.stalenessAtPush.length;
    const loop = new WorkerLoop(fc.link, { ...base, pipeline });
    await loop.run();
    const st = fc.stalenessAtPush.slice(before);
    assert.equal(st.length, 20);
    // Pushes right after another worker's step are a step behind, as they would be without prefetch
    // (the lease was granted before it); none is behind because of the prefetch itself.
    const behind = st.filter((s) => s > 0).length;
    assert.ok(behind <= 4, `pipeline=${pipeline}: ${behind} of 20 pushes computed on stale weights: ${st.join(',')}`);
    assert.ok(loop.stats.prefetchesDropped >= 8, `pipeline=${pipeline}: ${loop.stats.prefetchesDropped} prefetched leases handed back`);
    assert.equal(loop.stats.accepted, 20);
  }
  // Every lease handed back was never pushed.
  for (const id of fc.released) assert.ok(!fc.applied.has(id), `${id} both released and pushed`);
});

/** Every lease granted was pushed or handed back, exactly once, and none is left held. */
function accountedFor(fc: Awaited<ReturnType<typeof fakeCoordinator>>): void {
  const pushed = new Set(fc.pushes.map((p) => p.leaseId));
  const released = new Set(fc.released);
  assert.equal(released.size, fc.released.length, `a lease released twice: ${fc.released.join(',')}`);
  for (const id of fc.granted) assert.ok(pushed.has(id) !== released.has(id), `${id}: pushed ${pushed.has(id)}, released ${released.has(id)}`);
}

test('prefetch with local leases: the last lease, and stop() during a hand-back, leave no lease held and none released twice', async () => {
  await initNodeBackend('wasm');
  const base = { clock: systemClock, capabilities: { backend: 'wasm', runtime: 'node' }, prefetch: true } as const;
  // maxLeases 2 on a buffer of 2: the second push steps, and the prefetched lease behind it is
  // handed back without another being asked for.
  const a = await fakeCoordinator({ localBuffer: 2 });
  await new WorkerLoop(a.link, { ...base, maxLeases: 2 }).run();
  accountedFor(a);
  assert.equal(a.granted.length, 3, `granted ${a.granted.join(',')}`);
  // Lease answers late (the ack comes before the prefetched lease), stop() as the stepping push arrives.
  let loop: WorkerLoop | null = null;
  const b = await fakeCoordinator({ localBuffer: 2, leaseDelayMs: 40, onPush: (p) => (p.leaseId === 'l3' ? loop?.stop() : undefined) });
  loop = new WorkerLoop(b.link, { ...base, maxLeases: 10 });
  await loop.run();
  await new Promise((r) => setTimeout(r, 100)); // late answers land
  accountedFor(b);
});
