// The worker loop when the device cannot train the job: a refusing prepareJob, a gradient step that
// throws, and a coordinator answering MODEL_UNSUPPORTED_ON_DEVICE all end the loop in 'unsupported'
// (refusing the job where the worker found out itself), and a prepareJob's capabilities are announced.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from './tf.ts';
import { initNodeBackend } from './node-backend.ts';
import { NON_FINITE_LIMIT, WorkerLoop, type BackendFailure, type LoopOptions, type WorkerState } from './worker-loop.ts';
import { trainableSpecs } from './model.ts';
import { systemClock } from '../clock.ts';
import { ErrorCode, fail } from '../protocol/errors.ts';
import type { CoordinatorLink } from './link.ts';
import type { GradientPush, HelloRequest, JobDescriptor, LeaseAck, RefuseJob } from '../protocol/messages.ts';

async function tinyJob(): Promise<JobDescriptor> {
  const m = tf.sequential({ layers: [tf.layers.flatten({ inputShape: [4, 4, 1] }), tf.layers.dense({ units: 3, activation: 'softmax' })] });
  const job: JobDescriptor = {
    id: 'j', name: 'tiny', description: '', modelTopology: m.toJSON(null, false), task: 'classification', loss: 'categoricalCrossentropy', fromLogits: false, batchSize: 8,
    data: { featureShape: [4, 4, 1], features: { dtype: 'uint8', scale: 1 / 255 }, target: { kind: 'classes', numClasses: 3, dtype: 'uint8' } }, trainableSpecs: trainableSpecs(m),
  };
  m.dispose();
  return job;
}

/** A coordinator in memory; `lease` answers every lease request. */
function fakeLink(job: JobDescriptor, lease: () => LeaseAck) {
  const hellos: HelloRequest[] = [];
  const refusals: RefuseJob[] = [];
  const released: string[] = [];
  let pushes = 0;
  const pushed: GradientPush[] = [];
  const link: CoordinatorLink = {
    connected: true,
    hello: async (req) => {
      hellos.push(req);
      return { ok: true, workerId: 'w1', serverTime: Date.now() };
    },
    getJob: async () => ({ ok: true, job }),
    requestLease: async () => lease(),
    pushGradient: async (push) => {
      pushes++;
      pushed.push(push);
      return { ok: true, status: 'applied', version: 1, staleness: 0, scale: 1 };
    },
    releaseLease: async (id) => {
      released.push(id);
      return { ok: true };
    },
    refuseJob: async (req) => {
      refusals.push(req);
      return { ok: true };
    },
    onConnect: () => {},
    onDisconnect: () => {},
    onJobUpdate: () => {},
    close: () => {},
  };
  return { link, hellos, refusals, released, pushed, pushes: () => pushes };
}

const leaseOf = (bytes: number): LeaseAck => ({
  ok: true,
  lease: { leaseId: 'l1', jobId: 'j', epoch: 0, shardIndex: 0, baseVersion: 0, deadlineAt: Date.now() + 10_000, numSamples: 8, x: new Uint8Array(bytes), y: new Uint8Array(8) },
  weights: null,
});

async function runLoop(link: CoordinatorLink, extra: Partial<LoopOptions> = {}): Promise<{ states: [WorkerState, string | undefined][] }> {
  const states: [WorkerState, string | undefined][] = [];
  const loop = new WorkerLoop(link, {
    clock: systemClock,
    capabilities: { backend: 'wasm', runtime: 'node' },
    maxLeases: 3,
    maxBackoffMs: 50,
    listener: { state: (s, d) => states.push([s, d]) },
    ...extra,
  });
  await loop.run();
  return { states };
}

test('a prepareJob refusal is sent as job:refuse and ends the loop unsupported, without a lease', async () => {
  await initNodeBackend('wasm');
  const job = await tinyJob();
  let leases = 0;
  const fc = fakeLink(job, () => (leases++, leaseOf(8 * 16)));
  const { states } = await runLoop(fc.link, { prepareJob: async () => ({ ok: false, reason: "Kernel 'Foo' not registered for backend 'wasm'" }) });
  assert.deepEqual(fc.refusals, [{ jobId: 'j', reason: "Kernel 'Foo' not registered for backend 'wasm'" }]);
  assert.deepEqual(states.at(-1), ['unsupported', "Kernel 'Foo' not registered for backend 'wasm'"]);
  assert.ok(states.some(([s]) => s === 'probing'));
  assert.equal(leases, 0);
});

test("prepareJob's capabilities (measured backend, probes) are announced in a second hello", async () => {
  const job = await tinyJob();
  const fc = fakeLink(job, () => leaseOf(8 * 16));
  await runLoop(fc.link, {
    prepareJob: async () => ({ ok: true, capabilities: { backend: 'wasm', runtime: 'node', probes: [{ backend: 'wasm', samplesPerSec: 1234, status: 'ok' }] } }),
  });
  assert.equal(fc.hellos.length, 2);
  assert.equal(fc.hellos[0]?.capabilities.probes, undefined);
  assert.deepEqual(fc.hellos[1]?.capabilities.probes, [{ backend: 'wasm', samplesPerSec: 1234, status: 'ok' }]);
  assert.equal(fc.hellos[0]?.workerId, fc.hellos[1]?.workerId, 'the same worker id both times');
  assert.equal(fc.pushes(), 3);
});

test('a gradient step that throws hands the lease back and refuses the job instead of retrying', async () => {
  const job = await tinyJob();
  // 8 bytes of features for 8 samples of 16: the step cannot even build its input tensor.
  const fc = fakeLink(job, () => leaseOf(8));
  const { states } = await runLoop(fc.link);
  assert.deepEqual(fc.released, ['l1']);
  assert.equal(fc.refusals.length, 1);
  assert.match(fc.refusals[0]!.reason, /the wasm gradient step failed/);
  assert.equal(states.at(-1)?.[0], 'unsupported');
  assert.ok(!states.some(([s]) => s === 'retrying'), 'a local failure is not retried like a transport one');
  assert.equal(fc.pushes(), 0);
});

test('MODEL_UNSUPPORTED_ON_DEVICE from the coordinator ends the loop unsupported', async () => {
  const job = await tinyJob();
  const fc = fakeLink(job, () => fail(ErrorCode.Unsupported, 'this worker reported it cannot train job j'));
  const { states } = await runLoop(fc.link);
  assert.deepEqual(states.at(-1), ['unsupported', 'this worker reported it cannot train job j']);
  assert.equal(fc.refusals.length, 0, 'the coordinator already knows');
});

/** tinyJob's model with an output kernel of 1e38: on all-255 rows its logits overflow (NaN gradients), on all-zero rows they are 0. */
async function overflowingJob(): Promise<JobDescriptor> {
  const m = tf.sequential({
    layers: [tf.layers.flatten({ inputShape: [4, 4, 1] }), tf.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: tf.initializers.constant({ value: 1e38 }) })],
  });
  const job = { ...(await tinyJob()), modelTopology: m.toJSON(null, false) };
  m.dispose();
  return job;
}

const leaseOfRows = (fill: number): LeaseAck => {
  const ack = leaseOf(8 * 16);
  if (ack.ok && ack.lease) (ack.lease.x as Uint8Array).fill(fill);
  return ack;
};

test(`non-finite gradients ${NON_FINITE_LIMIT} times in a row: prepareJob is asked again without that backend, and the job is refused when none is left`, async () => {
  const job = await overflowingJob();
  const fc = fakeLink(job, () => leaseOfRows(255));
  const asked: (readonly BackendFailure[])[] = [];
  const { states } = await runLoop(fc.link, {
    maxLeases: 20,
    prepareJob: async (_job, failed) => {
      asked.push(failed);
      // First WebGPU, then (WebGPU failed) CPU, then nothing left.
      if (failed.length >= 2) return { ok: false, reason: `no backend can train this model here: ${failed.map((f) => `${f.backend} failed (${f.error})`).join(', ')}` };
      return { ok: true, capabilities: { backend: failed.length === 0 ? 'webgpu' : 'cpu', runtime: 'node' } };
    },
  });
  const error = `non-finite gradients on ${NON_FINITE_LIMIT} shards in a row`;
  assert.deepEqual(asked, [[], [{ backend: 'webgpu', error }], [{ backend: 'webgpu', error }, { backend: 'cpu', error }]]);
  // Each backend: NON_FINITE_LIMIT - 1 pushed (the coordinator refuses them), the last lease handed back.
  assert.equal(fc.pushes(), 2 * (NON_FINITE_LIMIT - 1));
  assert.deepEqual(fc.released, ['l1', 'l1']);
  assert.equal(fc.refusals.length, 1);
  assert.match(fc.refusals[0]!.reason, /webgpu failed \(non-finite gradients on 3 shards in a row\), cpu failed/);
  assert.equal(states.at(-1)?.[0], 'unsupported');
  assert.ok(states.some(([s, d]) => s === 'probing' && d === `webgpu gave ${error}: measuring the other backends`));
  assert.equal(fc.hellos.at(-1)?.capabilities.backend, 'cpu', 'the coordinator was told of the second backend');
});

test('without prepareJob (one backend) the job is refused after the non-finite run; finite gradients in between reset the run', async () => {
  const job = await overflowingJob();
  let n = 0;
  // 255, 255, 0, 255, 255, 0, ...: never NON_FINITE_LIMIT in a row.
  const alternating = fakeLink(job, () => leaseOfRows(++n % 3 === 0 ? 0 : 255));
  const first = await runLoop(alternating.link, { maxLeases: 6 });
  assert.equal(alternating.refusals.length, 0);
  assert.equal(alternating.pushes(), 6);
  assert.ok(!first.states.some(([s]) => s === 'unsupported'));

  const fc = fakeLink(job, () => leaseOfRows(255));
  const { states } = await runLoop(fc.link, { maxLeases: 20 });
  assert.equal(fc.refusals.length, 1);
  assert.equal(fc.refusals[0]!.reason, `the wasm gradient step gave non-finite gradients on ${NON_FINITE_LIMIT} shards in a row`);
  assert.equal(fc.pushes(), NON_FINITE_LIMIT - 1);
  assert.equal(states.at(-1)?.[0], 'unsupported');
});

test('a non-finite gradient travels as float32 even when the lease asks for int8, and leaves the error feedback clean', async () => {
  const job = await overflowingJob();
  let n = 0;
  // NaN, finite, NaN, finite: each push as the lease asks except the non-finite ones.
  const fc = fakeLink(job, () => {
    const ack = leaseOfRows(n++ % 2 === 0 ? 255 : 0);
    return ack.ok ? { ...ack, lease: { ...ack.lease, gradientEncoding: 'int8' } } : ack;
  });
  await runLoop(fc.link, { maxLeases: 4 });
  assert.deepEqual(fc.pushed.map((p) => p.encoding), [undefined, 'int8', undefined, 'int8']);
  const f32 = new Float32Array(fc.pushed[0]!.data as ArrayBuffer);
  assert.ok(f32.some((v) => Number.isNaN(v)), 'the coordinator sees the NaN (and refuses it)');
  // The int8 pushes decode to finite values: no NaN residual was carried into them.
  const { decodeVector, tensorSizes } = await import('../codec/compression.ts');
  for (const p of [fc.pushed[1]!, fc.pushed[3]!]) {
    const dec = decodeVector('int8', new Uint8Array(p.data as ArrayBuffer), tensorSizes(job.trainableSpecs));
    assert.ok(dec.ok && dec.values.every(Number.isFinite));
  }
});
