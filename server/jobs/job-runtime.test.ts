import type { StateStore } from '../storage/state-store.ts';
import { MemoryStateStore } from '../storage/memory-state-store.ts';
import { memoryJobData } from '../data/job-data.ts';
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { tf } from '../../shared/training/tf.ts';
import { initNodeBackend } from '../../shared/training/node-backend.ts';
import { buildModel, setWeightsFromPacked } from '../../shared/training/model.ts';
import { computeGradients } from '../../shared/training/gradient-step.ts';
import { toBytes } from '../../shared/codec/tensor-codec.ts';
import { FakeClock } from '../../shared/clock.ts';
import { ErrorCode } from '../../shared/protocol/errors.ts';
import type { GradientPush, LeaseAck, LeasePayload, PushAck } from '../../shared/protocol/messages.ts';
import { CheckpointStore } from '../storage/checkpoint-store.ts';
import type { Dataset } from '../data/dataset.ts';
import type { WorkerId } from '../leases/lease-manager.ts';
import type { JobConfig } from './job-config.ts';
import { JobRuntime, type JobRuntimeDeps } from './job-runtime.ts';
import { Aggregator } from '../aggregation/aggregator.ts';
import { aggregationOf } from '../aggregation/aggregation-config.ts';

const W1 = 'w-one' as WorkerId;
const W2 = 'w-two' as WorkerId;
const FEATURES = [4, 4, 1];
const SHARDS = 8; // 256 train examples / batch 32

function syntheticDataset(): Dataset {
  const row = 16;
  const make = (count: number, salt: number) => {
    const x = new Uint8Array(count * row);
    const y = new Uint8Array(count);
    for (let i = 0; i < count; i++) {
      const c = (i * 7 + salt) % 3;
      y[i] = c;
      // Class c lights up a third of the pixels, with some deterministic noise.
      for (let p = 0; p < row; p++) x[i * row + p] = (p % 3 === c ? 200 : 20) + ((i * 31 + p * 17) % 40);
    }
    return { x, y, count };
  };
  return { name: 'synthetic', featureShape: FEATURES, featureScale: 1 / 255, numClasses: 3, train: make(256, 0), test: make(64, 1) };
}

function tinyTopology(): Record<string, unknown> {
  const m = tf.sequential({
    name: 'tiny',
    layers: [tf.layers.flatten({ inputShape: FEATURES, name: 'flatten' }), tf.layers.dense({ units: 3, activation: 'softmax', name: 'out' })],
  });
  const t = m.toJSON(null, false) as unknown as Record<string, unknown>;
  m.dispose();
  return t;
}

function tinyConfig(over: Partial<JobConfig> = {}): JobConfig {
  return {
    name: 'tiny',
    description: 'unit test job',
    dataset: 'mnist',
    task: 'classification',
    modelTopology: tinyTopology(),
    loss: 'categoricalCrossentropy',
    fromLogits: false,
    optimizer: { kind: 'sgd', learningRate: 0.5, momentum: 0.9 },
    batchSize: 32,
    staleness: { rule: 'inverse', maxStaleness: 2 },
    stop: { maxEpochs: 5, targetAccuracy: null },
    evalEveryVersions: 1000,
    leaseTimeoutMs: 5000,
    maxGradNorm: 1000,
    seed: 1,
    ...over,
  };
}

const dirs: string[] = [];
const runtimes: JobRuntime[] = [];
let dataset: Dataset;

before(async () => {
  await initNodeBackend('wasm');
  dataset = syntheticDataset();
});
after(async () => {
  for (const rt of runtimes) {
    await rt.settle();
    rt.dispose();
  }
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** A copy of a job's durable state through the public StateStore API. */
function copyState(from: StateStore, jobId: string): MemoryStateStore {
  const to = new MemoryStateStore();
  for (const j of from.listJobs()) to.putJob(j);
  for (const u of from.updatesAfter(jobId, -1)) to.appendUpdate(u);
  for (const l of from.listLeases(jobId)) to.putLease(l);
  for (const m of from.metrics(jobId)) to.appendMetric(m);
  return to;
}

/** One durable state per data dir, so a reopened job finds what the first one logged. */
const stateByRoot = new Map<string, MemoryStateStore>();

async function newDeps(root?: string, warnings?: string[]): Promise<JobRuntimeDeps & { root: string; clock: FakeClock }> {
  const dir = root ?? (await mkdtemp(path.join(os.tmpdir(), 'flock-job-')));
  if (!root) dirs.push(dir);
  const clock = new FakeClock();
  const warn = (m: string) => (warnings ? warnings.push(m) : assert.fail(`unexpected warning: ${m}`));
  let state = stateByRoot.get(dir);
  if (!state) {
    state = new MemoryStateStore();
    stateByRoot.set(dir, state);
  }
  return { root: dir, clock, data: memoryJobData(dataset), store: new CheckpointStore(dir, 3, warn), state, log: { info() {}, warn }, newId: () => randomUUID() };
}

async function createJob(over: Partial<JobConfig> = {}) {
  const deps = await newDeps();
  const rt = await JobRuntime.create('job-1', tinyConfig(over), deps);
  runtimes.push(rt);
  return { rt, deps };
}

/** A worker's side of the protocol: keeps a model at its cached version, computes real gradients. */
class SimWorker {
  private cached: number | null = null;
  private constructor(
    readonly id: WorkerId,
    private readonly model: tf.LayersModel,
  ) {}
  static async start(id: WorkerId, rt: JobRuntime): Promise<SimWorker> {
    return new SimWorker(id, await buildModel(rt.config.modelTopology));
  }
  lease(rt: JobRuntime): LeasePayload {
    const ack = rt.requestLease(this.id, this.cached);
    assert.equal(ack.ok, true, ack.ok ? '' : `${ack.code}: ${ack.message}`);
    const ok = ack as Extract<LeaseAck, { ok: true }>;
    if (ok.weights) {
      setWeightsFromPacked(this.model, ok.weights.specs, ok.weights.data);
      this.cached = ok.weights.version;
    } else {
      assert.equal(this.cached, rt.currentVersion);
    }
    return ok.lease;
  }
  async gradient(rt: JobRuntime, lease: LeasePayload): Promise<GradientPush> {
    const g = await computeGradients(this.model, rt.descriptor(), { x: toBytes(lease.x), y: toBytes(lease.y), numSamples: lease.numSamples });
    return { leaseId: lease.leaseId, baseVersion: lease.baseVersion, numSamples: lease.numSamples, loss: g.loss, computeMs: 1, specs: rt.descriptor().trainableSpecs, data: g.gradients.buffer as ArrayBuffer };
  }
  dispose(): void {
    this.model.dispose();
  }
}

/** The job's current weights, as a worker without a cache would receive them (lease handed back). */
function weightsOf(rt: JobRuntime): number[] {
  const probe = 'w-probe' as WorkerId;
  const ack = rt.requestLease(probe, null);
  assert.ok(ack.ok && ack.weights);
  const data = [...new Float32Array(toBytes(ack.weights.data).slice().buffer)];
  assert.equal(rt.release(probe, ack.lease.leaseId), true);
  return data;
}

function handcrafted(rt: JobRuntime, lease: LeasePayload, fill: (i: number) => number): GradientPush {
  const specs = rt.descriptor().trainableSpecs;
  const n = specs.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
  const data = Float32Array.from({ length: n }, (_, i) => fill(i));
  return { leaseId: lease.leaseId, baseVersion: lease.baseVersion, numSamples: lease.numSamples, loss: 1, computeMs: 1, specs, data: data.buffer };
}

const codeOf = (a: PushAck | LeaseAck): string => (a.ok ? 'ok' : a.code);

test('a new job starts at v0 with a checkpoint and a descriptor matching the dataset', async () => {
  const { rt, deps } = await createJob();
  assert.equal(rt.currentVersion, 0);
  const d = rt.descriptor();
  assert.deepEqual(d.data.featureShape, FEATURES);
  assert.deepEqual(d.data.target, { kind: 'classes', numClasses: 3, dtype: 'uint8' });
  assert.deepEqual(d.trainableSpecs.map((s) => [s.name, s.shape]), [['out/kernel', [16, 3]], ['out/bias', [3]]]);
  assert.deepEqual(rt.summary().shards, { perEpoch: SHARDS, done: 0, leased: 0, waiting: SHARDS, quarantined: [] });
  assert.equal((await deps.store.loadLatest())?.state.version, 0);
  const ack = rt.requestLease(W1, null);
  assert.ok(ack.ok);
  assert.equal(ack.lease.numSamples, 32);
  assert.equal(toBytes(ack.lease.x).byteLength, 32 * 16);
  assert.equal(ack.lease.deadlineAt, deps.clock.now() + 5000);
  assert.equal(ack.weights?.version, 0);
  assert.equal(toBytes(ack.weights.data).byteLength, (16 * 3 + 3) * 4);
  // A worker holding the current version gets no weights.
  const again = rt.requestLease(W1, 0);
  assert.ok(again.ok);
  assert.equal(again.weights, null);
});

test('a push is idempotent per lease: the retry is a duplicate and the version moves once', async () => {
  const { rt } = await createJob();
  const w = await SimWorker.start(W1, rt);
  const lease = w.lease(rt);
  const before = weightsOf(rt);
  const msg = await w.gradient(rt, lease);
  const first = await rt.push(W1, msg);
  assert.deepEqual(first, { ok: true, status: 'applied', version: 1, staleness: 0, scale: 1 });
  const afterFirst = weightsOf(rt);
  assert.notDeepEqual(afterFirst, before);
  const second = await rt.push(W1, msg);
  assert.deepEqual(second, { ok: true, status: 'duplicate', version: 1, staleness: 0, scale: 1 });
  assert.equal(rt.currentVersion, 1);
  assert.deepEqual(weightsOf(rt), afterFirst);
  assert.equal(codeOf(await rt.push(W2, msg)), ErrorCode.LeaseNotYours);
  const s = rt.summary();
  assert.equal(s.updates.applied, 1);
  assert.equal(s.shards.done, 1);
  assert.equal(s.samplesApplied, 32);
  w.dispose();
});

test('a gradient staler than the bound is refused with STALE_GRADIENT and its shard reissued', async () => {
  const { rt } = await createJob();
  const slow = await SimWorker.start(W1, rt);
  const fast = await SimWorker.start(W2, rt);
  const old = slow.lease(rt);
  const oldMsg = await slow.gradient(rt, old);
  for (let i = 0; i < 3; i++) {
    const l = fast.lease(rt);
    const ack = await rt.push(W2, await fast.gradient(rt, l));
    assert.equal(ack.ok && ack.version, i + 1);
  }
  const ack = await rt.push(W1, oldMsg);
  assert.equal(codeOf(ack), ErrorCode.Stale);
  assert.equal(rt.currentVersion, 3);
  assert.deepEqual(rt.summary().updates.refused, { [ErrorCode.Stale]: 1 });
  const next = fast.lease(rt);
  assert.deepEqual([next.epoch, next.shardIndex], [old.epoch, old.shardIndex], 'the refused shard is reissued first');
  assert.equal(next.baseVersion, 3);
  slow.dispose();
  fast.dispose();
});

test('within the bound a stale gradient is applied with the rule scale', async () => {
  const { rt } = await createJob();
  const slow = await SimWorker.start(W1, rt);
  const fast = await SimWorker.start(W2, rt);
  const old = slow.lease(rt);
  const oldMsg = await slow.gradient(rt, old);
  for (let i = 0; i < 2; i++) await rt.push(W2, await fast.gradient(rt, fast.lease(rt)));
  assert.deepEqual(await rt.push(W1, oldMsg), { ok: true, status: 'applied', version: 3, staleness: 2, scale: 1 / 3 });
  assert.equal(rt.stalenessHistogram()[2], 1);
  assert.equal(rt.stalenessHistogram()[0], 2);
  slow.dispose();
  fast.dispose();
});

test('NaN / Infinity gradients are refused; version and weights unchanged; the shard comes back', async () => {
  const { rt } = await createJob();
  const w = await SimWorker.start(W1, rt);
  const before = weightsOf(rt);
  const lease = w.lease(rt);
  const ack = await rt.push(W1, handcrafted(rt, lease, (i) => (i === 5 ? NaN : 0.01)));
  assert.equal(codeOf(ack), ErrorCode.NonFinite);
  assert.equal(rt.currentVersion, 0);
  assert.deepEqual(weightsOf(rt), before);
  // The released lease can't be retried; its shard is handed out again.
  assert.equal(codeOf(await rt.push(W1, handcrafted(rt, lease, () => 0.01))), ErrorCode.UnknownLease);
  const again = w.lease(rt);
  assert.equal(again.shardIndex, lease.shardIndex);
  assert.equal(codeOf(await rt.push(W1, handcrafted(rt, again, (i) => (i === 0 ? -Infinity : 0)))), ErrorCode.NonFinite);
  const third = w.lease(rt);
  assert.equal(codeOf(await rt.push(W1, handcrafted(rt, third, () => 1e6))), ErrorCode.TooLarge);
  const fourth = w.lease(rt);
  assert.equal(codeOf(await rt.push(W1, { ...handcrafted(rt, fourth, () => 0), specs: [] })), ErrorCode.SpecMismatch);
  assert.equal(rt.currentVersion, 0);
  assert.deepEqual(weightsOf(rt), before);
  assert.deepEqual(rt.summary().updates.refused, {
    [ErrorCode.NonFinite]: 2,
    [ErrorCode.UnknownLease]: 1,
    [ErrorCode.TooLarge]: 1,
    [ErrorCode.SpecMismatch]: 1,
  });
  assert.equal(rt.summary().shards.done, 0);
  w.dispose();
});

test('a push of an unknown lease, or with a wrong base version, is refused and changes nothing', async () => {
  const { rt } = await createJob();
  const w = await SimWorker.start(W1, rt);
  const lease = w.lease(rt);
  const good = await w.gradient(rt, lease);
  assert.equal(codeOf(await rt.push(W1, { ...good, leaseId: 'no-such-lease' })), ErrorCode.UnknownLease);
  assert.equal(codeOf(await rt.push(W1, { ...good, baseVersion: 5 })), ErrorCode.BadRequest);
  assert.equal(rt.currentVersion, 0);
  // The lease itself is still good.
  assert.equal(codeOf(await rt.push(W1, good)), 'ok');
  assert.equal(rt.currentVersion, 1);
  w.dispose();
});

test('an expired lease is reissued by the sweep; its late push still counts, the replacement is void', async () => {
  const { rt, deps } = await createJob();
  const a = await SimWorker.start(W1, rt);
  const b = await SimWorker.start(W2, rt);
  const late = a.lease(rt);
  const lateMsg = await a.gradient(rt, late);
  deps.clock.advance(4999);
  assert.equal(rt.sweep(), 0);
  deps.clock.advance(1);
  assert.equal(rt.sweep(), 1);
  const replacement = b.lease(rt);
  assert.equal(replacement.shardIndex, late.shardIndex);
  assert.equal(codeOf(await rt.push(W1, lateMsg)), 'ok');
  assert.equal(codeOf(await rt.push(W2, await b.gradient(rt, replacement))), ErrorCode.ShardAlreadyDone);
  assert.equal(rt.currentVersion, 1);
  assert.equal(rt.summary().shards.done, 1);
  a.dispose();
  b.dispose();
});

test('pause: requestLease answers JOB_PAUSED until resume', async () => {
  const { rt } = await createJob();
  await rt.pause();
  assert.equal(rt.status, 'paused');
  const ack = rt.requestLease(W1, null);
  assert.deepEqual(ack, { ok: false, code: ErrorCode.JobPaused, message: 'paused by admin', retryAfterMs: 2000 });
  assert.equal(rt.summary().status, 'paused');
  await rt.resume();
  assert.equal(rt.requestLease(W1, null).ok, true);
  await rt.cancel();
  assert.equal(codeOf(rt.requestLease(W1, null)), ErrorCode.JobFinished);
  await rt.settle();
});

test('a disposed job (shutdown, or handed to another owner) answers a lease request NO_WORK instead of reading its closed data', async () => {
  const { rt } = await createJob();
  await rt.settle();
  rt.dispose();
  const ack = rt.requestLease(W1, null);
  assert.equal(codeOf(ack), ErrorCode.NoWork);
  assert.ok(!ack.ok && ack.retryAfterMs !== undefined && ack.retryAfterMs > 0, 'a retry time: the worker asks again');
});

test('checkpoint then open resumes at the same version, weights, optimizer state and shard ledger', async () => {
  const { rt, deps } = await createJob();
  const w = await SimWorker.start(W1, rt);
  const done = new Set<number>();
  for (let i = 0; i < 3; i++) {
    const l = w.lease(rt);
    assert.equal(codeOf(await rt.push(W1, await w.gradient(rt, l))), 'ok');
    done.add(l.shardIndex);
  }
  // A lease in flight at the checkpoint is not done.
  const inFlight = w.lease(rt);
  await rt.checkpoint();
  await rt.settle();
  const weights = weightsOf(rt);
  const summary = rt.summary();

  // The reopened job gets a copy of the durable state, so both copies can keep running side by side.
  const deps2 = { ...(await newDeps(deps.root)), state: copyState(deps.state, 'job-1') };
  const back = await JobRuntime.open('job-1', rt.config, deps2);
  runtimes.push(back);
  assert.equal(back.currentVersion, 3);
  assert.deepEqual(weightsOf(back), weights);
  // The lease in flight survives the restart with its deadline; past it, the sweep reissues it.
  assert.deepEqual(back.summary().shards, { perEpoch: SHARDS, done: 3, leased: 1, waiting: SHARDS - 4, quarantined: [] });
  assert.equal(inFlight.deadlineAt > deps2.clock.now(), true);
  deps2.clock.advance(inFlight.deadlineAt - deps2.clock.now() + 1);
  assert.equal(back.sweep(), 1);
  assert.deepEqual(back.summary().shards, { perEpoch: SHARDS, done: 3, leased: 0, waiting: SHARDS - 3, quarantined: [] });
  assert.equal(back.summary().updates.applied, summary.updates.applied);
  assert.equal(back.summary().lastCheckpointVersion, 3);
  const granted: number[] = [];
  for (let i = 0; i < SHARDS - 3; i++) {
    const ack = back.requestLease(W2, 3);
    assert.ok(ack.ok);
    assert.equal(ack.lease.epoch, 0);
    granted.push(ack.lease.shardIndex);
  }
  assert.ok(granted.includes(inFlight.shardIndex));
  const expected = Array.from({ length: SHARDS }, (_, i) => i).filter((s) => !done.has(s));
  assert.deepEqual(granted.sort((a, b) => a - b), expected);

  // Same optimizer state: the same gradient moves both copies to the same weights (momentum included).
  const l1 = rt.requestLease(W1, 3);
  const l2 = back.requestLease(W2, 3);
  assert.ok(l1.ok && l2.ok);
  const fill = (i: number) => Math.sin(i) * 0.1;
  assert.equal(codeOf(await rt.push(W1, handcrafted(rt, l1.lease, fill))), 'ok');
  assert.equal(codeOf(await back.push(W2, handcrafted(back, l2.lease, fill))), 'ok');
  assert.deepEqual(weightsOf(back), weightsOf(rt));
  w.dispose();
});

test('the live tensor count does not grow across many pushes and an evaluation', async () => {
  const { rt } = await createJob();
  const w = await SimWorker.start(W1, rt);
  const step = async () => {
    const l = w.lease(rt);
    assert.equal(codeOf(await rt.push(W1, await w.gradient(rt, l))), 'ok');
  };
  for (let i = 0; i < 2; i++) await step();
  await rt.evaluateNow();
  await rt.settle();
  const tensors = tf.memory().numTensors;
  for (let i = 0; i < 12; i++) await step(); // crosses the end of epoch 0: one more evaluation
  await rt.settle();
  assert.equal(rt.currentVersion, 14);
  assert.equal(rt.metricHistory().evaluations.length, 2);
  assert.equal(tf.memory().numTensors, tensors);
  w.dispose();
});

test('training on the synthetic data improves test accuracy; maxEpochs ends the job', async () => {
  const { rt } = await createJob({ stop: { maxEpochs: 2, targetAccuracy: null }, optimizer: { kind: 'adam', learningRate: 0.05 } });
  const w = await SimWorker.start(W1, rt);
  for (let i = 0; i < 2 * SHARDS; i++) {
    const l = w.lease(rt);
    assert.equal(codeOf(await rt.push(W1, await w.gradient(rt, l))), 'ok');
  }
  // The final evaluation is still running: no epoch may be reopened meanwhile.
  assert.equal(rt.status, 'running');
  assert.equal(codeOf(rt.requestLease(W1, null)), ErrorCode.NoWork);
  await rt.settle();
  assert.equal(codeOf(rt.requestLease(W1, null)), ErrorCode.JobFinished);
  const s = rt.summary();
  assert.equal(s.status, 'finished');
  assert.equal(s.version, 2 * SHARDS);
  assert.equal(s.epoch, 2);
  assert.equal(s.progress, 1);
  assert.ok((s.metrics.testAccuracy ?? 0) > 0.9, `test accuracy ${s.metrics.testAccuracy}`);
  assert.equal(rt.metricHistory().evaluations.at(-1)?.version, 2 * SHARDS);
  w.dispose();
});

test('crash after acks: reopening replays the update log to the same weights, ledger and idempotent answers', async () => {
  const { rt, deps } = await createJob();
  const w = await SimWorker.start(W1, rt);
  const pushes: GradientPush[] = [];
  for (let i = 0; i < 2; i++) {
    const l = w.lease(rt);
    const g = await w.gradient(rt, l);
    assert.equal(codeOf(await rt.push(W1, g)), 'ok');
  }
  await rt.checkpoint();
  await rt.settle();
  // Three more acknowledged pushes, then the process "dies": no checkpoint covers them.
  for (let i = 0; i < 3; i++) {
    const l = w.lease(rt);
    const g = await w.gradient(rt, l);
    pushes.push(g);
    assert.equal(codeOf(await rt.push(W1, g)), 'ok');
  }
  const weights = weightsOf(rt);
  // The worker's durable record counts what it delivered and how fast.
  const record = deps.state.getWorker(W1)!;
  assert.equal(record.accepted, 5);
  assert.equal(record.leasesDone, 5);
  assert.ok(record.msPerSample !== null && record.msPerSample >= 0);
  const deps2 = { ...(await newDeps(deps.root)), state: copyState(deps.state, 'job-1') };
  const back = await JobRuntime.open('job-1', rt.config, deps2);
  runtimes.push(back);
  assert.equal(back.currentVersion, 5, 'checkpoint v2 + 3 replayed updates');
  assert.deepEqual(weightsOf(back), weights, 'replay reproduces the weights exactly');
  assert.equal(back.summary().shards.done, 5);
  assert.equal(back.summary().updates.applied, 5);
  // A retried push of an update applied before the crash is answered, not applied again.
  const again = await back.push(W1, pushes[1]!);
  assert.ok(again.ok && again.status === 'duplicate');
  assert.equal(again.version, 4);
  assert.equal(back.currentVersion, 5);
  // Only the same worker may see that answer.
  assert.equal(codeOf(await back.push(W2, pushes[1]!)), ErrorCode.UnknownLease);
  // Replay wrote a fresh checkpoint, so the log can be compacted behind it.
  assert.equal(back.summary().lastCheckpointVersion, 5);
  w.dispose();
});

test('a shard that keeps failing on several workers is set aside and reported, not retried forever', async () => {
  const warnings: string[] = [];
  const deps = await newDeps(undefined, warnings);
  const rt = await JobRuntime.create('job-q', tinyConfig({ leaseTimeoutMs: 1000 }), deps);
  runtimes.push(rt);
  const workers = ['w-a', 'w-b', 'w-c', 'w-d'] as WorkerId[];
  let target: number | null = null;
  let failures = 0;
  // Every worker takes the poisoned shard and never answers; after 8 expiries on >= 3 workers it is set aside.
  for (let round = 0; round < 12 && rt.summary().shards.quarantined.length === 0; round++) {
    const wid = workers[round % workers.length]!;
    for (;;) {
      const ack = rt.requestLease(wid, null);
      assert.ok(ack.ok);
      target ??= ack.lease.shardIndex;
      if (ack.lease.shardIndex === target) break;
      rt.release(wid, ack.lease.leaseId);
    }
    deps.clock.advance(rt.config.leaseTimeoutMs + 1);
    failures += rt.sweep();
  }
  const q = rt.summary().shards.quarantined;
  assert.equal(q.length, 1);
  assert.equal(q[0]!.shard, target);
  assert.equal(q[0]!.failures, 8);
  assert.ok(q[0]!.workers >= 3);
  assert.equal(failures, 8);
  assert.ok(warnings.some((m) => m.includes('set aside')), 'the quarantine is logged');
  // It counts as done for the epoch and is never handed out again.
  for (let i = 0; i < SHARDS; i++) {
    const ack = rt.requestLease(W1, null);
    if (!ack.ok) break;
    assert.notEqual(ack.lease.epoch === 0 && ack.lease.shardIndex === target, true);
  }
});

test('the best checkpoint (by test accuracy) outlives keep-last-N pruning and a reopen', async () => {
  const base = await newDeps();
  const deps: JobRuntimeDeps = { ...base, bestStore: new CheckpointStore(path.join(base.root, 'best'), 1, assert.fail) };
  const rt = await JobRuntime.create('job-best', tinyConfig(), deps);
  runtimes.push(rt);
  const w = await SimWorker.start(W1, rt);
  for (let i = 0; i < 4; i++) {
    const l = w.lease(rt);
    assert.equal(codeOf(await rt.push(W1, await w.gradient(rt, l))), 'ok');
  }
  await rt.evaluateNow();
  await rt.settle();
  const good = rt.metricHistory().evaluations.at(-1)!;
  assert.equal(good.version, 4);
  assert.deepEqual(rt.summary().best, { version: 4, metric: 'testAccuracy', testAccuracy: good.testAccuracy, testLoss: good.testLoss, at: good.at });
  // Gradient ascent: each push makes the model worse; a checkpoint after each rotates v4 out.
  for (let i = 0; i < 5; i++) {
    const l = w.lease(rt);
    const g = await w.gradient(rt, l);
    const up = new Float32Array((g.data as ArrayBuffer).slice(0)).map((v) => -20 * v);
    assert.equal(codeOf(await rt.push(W1, { ...g, data: up.buffer })), 'ok');
    await rt.checkpoint();
  }
  await rt.evaluateNow();
  await rt.settle();
  const worse = rt.metricHistory().evaluations.at(-1)!;
  assert.equal(worse.version, 9);
  assert.ok(worse.testAccuracy! < good.testAccuracy!, `accuracy ${worse.testAccuracy} should fall below ${good.testAccuracy}`);
  assert.deepEqual((await deps.store.infos()).map((i) => i.version), [9, 8, 7], 'keep-last-3 pruned v4');
  assert.equal(rt.summary().best?.version, 4, 'the best is still v4');
  const kept = await deps.bestStore!.loadLatest();
  assert.equal(kept?.state.version, 4);
  assert.equal(kept?.weights.byteLength, (16 * 3 + 3) * 4);
  // Reopened (a restart): the best is known again without another evaluation.
  const back = await JobRuntime.open('job-best', rt.config, { ...deps, state: copyState(deps.state, 'job-best') });
  runtimes.push(back);
  assert.equal(back.summary().best?.version, 4);
  w.dispose();
});

test('epochs are counted from 1 in the summary; all done shows every shard done', async () => {
  const { rt, deps } = await createJob({ stop: { maxEpochs: 2, targetAccuracy: null } });
  assert.equal(rt.summary().epoch, 1);
  const w = await SimWorker.start(W1, rt);
  for (let i = 0; i < SHARDS; i++) {
    const l = w.lease(rt);
    assert.equal(codeOf(await rt.push(W1, await w.gradient(rt, l))), 'ok');
  }
  await rt.settle();
  assert.equal(rt.summary().epoch, 2);
  for (let i = 0; i < SHARDS; i++) {
    const l = w.lease(rt);
    assert.equal(codeOf(await rt.push(W1, await w.gradient(rt, l))), 'ok');
  }
  await rt.settle();
  const s = rt.summary();
  assert.equal(s.status, 'finished');
  assert.equal(s.epoch, 2);
  assert.deepEqual({ done: s.shards.done, leased: s.shards.leased, waiting: s.shards.waiting }, { done: SHARDS, leased: 0, waiting: 0 });
  // Reopened, a finished job says so (it used to read "(epoch 0)").
  const lines: string[] = [];
  const back = await JobRuntime.open('job-1', rt.config, { ...deps, state: copyState(deps.state, 'job-1'), log: { info: (m) => lines.push(m), warn: (m) => lines.push(m) } });
  runtimes.push(back);
  assert.equal(back.summary().epoch, 2);
  assert.match(lines.join('\n'), /resumed from checkpoint v16 \+ 0 logged update\(s\) = v16 \(finished\)/);
  w.dispose();
});

for (const aggregation of [
  { mode: 'buffered', rule: 'mean', bufferSize: 3 },
  { mode: 'buffered', rule: 'centered-clip', bufferSize: 3 },
  { mode: 'buffered', rule: 'trimmed-mean', bufferSize: 4, trimFraction: 0.25 },
  { mode: 'local', rule: 'median', bufferSize: 2, localSteps: 2 },
] as const) {
  test(`${aggregation.mode}/${aggregation.rule}: a crash with gradients in the buffer replays to the same weights; the log names each gradient's step`, async () => {
    const { rt, deps } = await createJob({ aggregation: JSON.parse(JSON.stringify(aggregation)), stop: { maxEpochs: 20, targetAccuracy: null } });
    const K = aggregation.bufferSize;
    const w = await SimWorker.start(W1, rt);
    const acks: PushAck[] = [];
    const pushes: GradientPush[] = [];
    const run = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const l = w.lease(rt);
        if (aggregation.mode === 'local') assert.deepEqual(l.local && [l.local.steps, l.local.batchSize], [2, 32]);
        // Local mode pushes a pseudo-gradient; its shape is the gradient's, so a handcrafted one stands in.
        const g = await w.gradient(rt, l);
        pushes.push(g);
        acks.push(await rt.push(W1, g));
      }
    };
    await run(K + 1); // one step, one buffered
    await rt.checkpoint();
    await rt.settle();
    await run(K); // a second step, one more buffered: the crash leaves one in the buffer
    await rt.settle(); // an epoch-end evaluation may be writing into the same folder
    const weights = weightsOf(rt);
    const seen = acks.map((a) => (a.ok ? `${a.status}@${a.version}` : `${a.code} ${a.message}`));
    assert.equal(rt.currentVersion, 2, seen.join(', '));
    assert.equal(rt.summary().aggregation.buffered, 1, seen.join(', '));
    assert.deepEqual(acks.map((a) => (a.ok ? `${a.status}@${a.version}` : a.code)), [
      ...Array.from({ length: K - 1 }, () => 'buffered@1'), 'applied@1', ...Array.from({ length: K - 1 }, () => 'buffered@2'), 'applied@2', 'buffered@3',
    ]);
    const steps = deps.state.updatesAfter('job-1', 0).map((u) => u.step);
    assert.deepEqual(steps, [...Array.from({ length: K }, () => 1), ...Array.from({ length: K }, () => 2), 3]);
    const back = await JobRuntime.open('job-1', rt.config, { ...(await newDeps(deps.root)), state: copyState(deps.state, 'job-1') });
    runtimes.push(back);
    assert.equal(back.currentVersion, 2);
    assert.equal(back.summary().aggregation.buffered, 1);
    assert.deepEqual(weightsOf(back), weights, 'bit-exact');
    // The buffered gradient is answered as a duplicate and completes its step with the next ones.
    const dup = await back.push(W1, pushes.at(-1)!);
    assert.ok(dup.ok && dup.status === 'duplicate' && dup.version === 3);
    w.dispose();
  });
}

// ---- early stop in buffered mode: every acknowledged gradient reaches the final weights ----------

const BUFFERED_3 = { mode: 'buffered', rule: 'centered-clip', bufferSize: 3 } as const;

/** The newest checkpoint on disk: its version, status and weights. */
async function saved(deps: JobRuntimeDeps): Promise<{ version: number; status: string; weights: number[] }> {
  const cp = (await deps.store.loadLatest())!;
  return { version: cp.state.version, status: (cp.state.runtime as { status: string }).status, weights: [...new Float32Array(cp.weights.slice().buffer)] };
}

/** The weights an Aggregator reaches from `initial` over the logged gradients, flushing what is left. */
function expectedFinal(rt: JobRuntime, state: StateStore, initial: number[]): number[] {
  const params = Float32Array.from(initial);
  const agg = new Aggregator(aggregationOf(rt.config), rt.config.optimizer, params, 0, 0);
  for (const u of state.updatesAfter(rt.id, 0)) agg.admit({ seq: u.version, gradient: new Float32Array(u.gradient!.slice().buffer), scale: u.scale ?? null, lr: u.lr });
  agg.flush();
  return [...params];
}

/** Pushes `n` real gradients from `w`, each acknowledged. */
async function pushN(rt: JobRuntime, w: SimWorker, n: number): Promise<PushAck[]> {
  const acks: PushAck[] = [];
  for (let i = 0; i < n; i++) acks.push(await rt.push(w.id, await w.gradient(rt, w.lease(rt))));
  assert.ok(acks.every((a) => a.ok), acks.map(codeOf).join(', '));
  return acks;
}

test('buffered: a job that reaches its target flushes the buffer into the final version; a restart (even from the checkpoint before the stop) reproduces it bit for bit', async () => {
  const { rt, deps } = await createJob({ aggregation: { ...BUFFERED_3 } as JobConfig['aggregation'], stop: { maxEpochs: 20, targetAccuracy: 0.01 } });
  const initial = weightsOf(rt);
  const w = await SimWorker.start(W1, rt);
  await pushN(rt, w, 4); // one step, one gradient waiting
  assert.deepEqual([rt.currentVersion, rt.summary().aggregation.buffered], [1, 1]);
  await rt.checkpoint(); // v1 with one buffered: the state a crash before the stop would reopen
  await rt.evaluateNow();
  await rt.settle();
  const s = rt.summary();
  assert.equal(s.status, 'finished');
  assert.deepEqual([s.version, s.aggregation.buffered], [2, 0], 'the waiting gradient made a partial step v2');
  assert.equal(rt.metricHistory().evaluations.at(-1)?.version, 2, 'the final evaluation is of the flushed weights');
  assert.deepEqual(deps.state.updatesAfter('job-1', 0).map((u) => u.step), [1, 1, 1, 2]);
  const final = await saved(deps);
  assert.deepEqual([final.version, final.status], [2, 'finished']);
  assert.deepEqual(final.weights, expectedFinal(rt, deps.state, initial), 'the final weights hold all 4 gradients');
  // Restart from the final checkpoint: finished at v2, nothing waiting.
  const back = await JobRuntime.open('job-1', rt.config, { ...(await newDeps(deps.root)), state: copyState(deps.state, 'job-1') });
  runtimes.push(back);
  assert.deepEqual([back.status, back.currentVersion, back.summary().aggregation.buffered], ['finished', 2, 0]);
  // The final checkpoint lost (a crash before it was written): v1 + its buffer reopen running, and
  // the same stop makes the same partial step.
  await rm(path.join(deps.root, 'v0000000002'), { recursive: true });
  const deps2 = { ...(await newDeps(deps.root)), state: copyState(deps.state, 'job-1') };
  const again = await JobRuntime.open('job-1', rt.config, deps2);
  runtimes.push(again);
  assert.deepEqual([again.status, again.currentVersion, again.summary().aggregation.buffered], ['running', 1, 1]);
  await again.evaluateNow();
  await again.settle();
  const redone = await saved(deps2);
  assert.deepEqual([redone.version, redone.status], [2, 'finished']);
  assert.deepEqual(redone.weights, final.weights, 'bit-exact');
  w.dispose();
});

test('buffered: the wall-time limit flushes the buffer into the final version', async () => {
  const { rt, deps } = await createJob({ aggregation: { ...BUFFERED_3 } as JobConfig['aggregation'], stop: { maxEpochs: 20, targetAccuracy: null, maxMinutes: 1 } });
  const initial = weightsOf(rt);
  const w = await SimWorker.start(W1, rt);
  await pushN(rt, w, 5); // one step, two waiting
  assert.deepEqual([rt.currentVersion, rt.summary().aggregation.buffered], [1, 2]);
  deps.clock.advance(61_000);
  rt.sweep();
  await rt.settle();
  const s = rt.summary();
  assert.deepEqual([s.status, s.version, s.aggregation.buffered], ['finished', 2, 0]);
  assert.equal(rt.metricHistory().evaluations.at(-1)?.version, 2);
  const final = await saved(deps);
  assert.deepEqual([final.version, final.status], [2, 'finished']);
  assert.deepEqual(final.weights, expectedFinal(rt, deps.state, initial));
  const back = await JobRuntime.open('job-1', rt.config, { ...(await newDeps(deps.root)), state: copyState(deps.state, 'job-1') });
  runtimes.push(back);
  assert.deepEqual([back.status, back.currentVersion, back.summary().aggregation.buffered], ['finished', 2, 0]);
  w.dispose();
});

test('buffered: cancel keeps what was acknowledged (the buffer flushed, on disk when cancel resolves)', async () => {
  const { rt, deps } = await createJob({ aggregation: { ...BUFFERED_3 } as JobConfig['aggregation'] });
  const initial = weightsOf(rt);
  const w = await SimWorker.start(W1, rt);
  await pushN(rt, w, 4);
  await rt.pause(); // a paused job keeps its buffer (it may resume)
  assert.deepEqual([rt.currentVersion, rt.summary().aggregation.buffered], [1, 1]);
  await rt.cancel();
  assert.deepEqual([rt.status, rt.currentVersion, rt.summary().aggregation.buffered], ['cancelled', 2, 0]);
  const final = await saved(deps);
  assert.deepEqual([final.version, final.status], [2, 'cancelled']);
  assert.deepEqual(final.weights, expectedFinal(rt, deps.state, initial));
  w.dispose();
});

test('buffered: a last shard completed by being set aside flushes the buffer', async () => {
  const warnings: string[] = [];
  const deps = await newDeps(undefined, warnings);
  const rt = await JobRuntime.create('job-1', tinyConfig({ aggregation: { ...BUFFERED_3 } as JobConfig['aggregation'], stop: { maxEpochs: 1, targetAccuracy: null }, leaseTimeoutMs: 1000 }), deps);
  runtimes.push(rt);
  const initial = weightsOf(rt);
  const w = await SimWorker.start(W1, rt);
  await pushN(rt, w, SHARDS - 1); // 7 of 8 shards: two steps, one waiting
  assert.deepEqual([rt.currentVersion, rt.summary().aggregation.buffered], [2, 1]);
  // The last shard never comes back; after 8 expiries on 4 workers it is set aside, closing the epoch.
  const workers = ['w-a', 'w-b', 'w-c', 'w-d'] as WorkerId[];
  for (let round = 0; round < 12 && rt.summary().shards.quarantined.length === 0; round++) {
    assert.ok(rt.requestLease(workers[round % workers.length]!, null).ok);
    deps.clock.advance(1001);
    rt.sweep();
  }
  assert.equal(rt.summary().shards.quarantined.length, 1);
  await rt.settle();
  const s = rt.summary();
  assert.deepEqual([s.status, s.version, s.aggregation.buffered], ['finished', 3, 0]);
  assert.equal(rt.metricHistory().evaluations.at(-1)?.version, 3);
  assert.deepEqual((await saved(deps)).weights, expectedFinal(rt, deps.state, initial));
  w.dispose();
});

test('buffered: a target met, then missed after the flush, runs on; replay from before the flush finds it in the log', async () => {
  // A gentle learning rate and eight steps, so v8 is a real model: from a random start one step at
  // the default 0.5 x sqrt(3) can land on a one-class (or all-wrong) predictor, which a wrecked
  // model then matches (the same accuracy, once in CI).
  const { rt, deps } = await createJob({ aggregation: { mode: 'buffered', rule: 'mean', bufferSize: 3 } as JobConfig['aggregation'], optimizer: { kind: 'sgd', learningRate: 0.1, momentum: 0.9 }, stop: { maxEpochs: 20, targetAccuracy: null } });
  const w = await SimWorker.start(W1, rt);
  await pushN(rt, w, 24);
  await rt.settle(); // epoch ends (8 shards each) were evaluated
  await rt.evaluateNow(); // v8, and a checkpoint of it with an empty buffer
  await rt.settle();
  const a1 = rt.metricHistory().evaluations.at(-1)!;
  assert.equal(a1.version, 8);
  assert.ok(a1.testAccuracy! > 0.6, `v8 scores ${a1.testAccuracy}`);
  // A gradient that wrecks the model waits in the buffer, then the target (v8's accuracy) is met.
  // (Class 0's bias pushed far up: every example is then predicted class 0, about a third right.)
  const l = w.lease(rt);
  assert.ok((await rt.push(W1, handcrafted(rt, l, (i) => (i === 16 * 3 ? -500 : 0)))).ok);
  rt.config.stop.targetAccuracy = a1.testAccuracy;
  await rt.evaluateNow();
  await rt.settle();
  const a2 = rt.metricHistory().evaluations.at(-1)!;
  assert.equal(a2.version, 9, 'the flushed version was evaluated');
  assert.ok(a2.testAccuracy! < a1.testAccuracy!, `the flush should have cost accuracy: ${a2.testAccuracy} vs ${a1.testAccuracy}`);
  assert.deepEqual([rt.status, rt.currentVersion, rt.summary().aggregation.buffered], ['running', 9, 0]);
  rt.config.stop.targetAccuracy = null;
  await pushN(rt, w, 2);
  assert.deepEqual(deps.state.updatesAfter('job-1', 0).map((u) => u.step), [...Array.from({ length: 24 }, (_, i) => Math.floor(i / 3) + 1), 9, 10, 10]);
  const weights = weightsOf(rt);
  // Crash with the checkpoint after the flush lost: v8 + the log must replay the flush.
  await rt.settle();
  await rm(path.join(deps.root, 'v0000000009'), { recursive: true });
  const back = await JobRuntime.open('job-1', rt.config, { ...(await newDeps(deps.root)), state: copyState(deps.state, 'job-1') });
  runtimes.push(back);
  assert.deepEqual([back.currentVersion, back.summary().aggregation.buffered], [9, 2]);
  assert.deepEqual(weightsOf(back), weights, 'bit-exact');
  w.dispose();
});

test('a job whose update log has records but no surviving checkpoint refuses to start, saying why', async () => {
  const { rt, deps } = await createJob();
  const w = await SimWorker.start(W1, rt);
  await rt.push(W1, await w.gradient(rt, w.lease(rt)));
  await rt.settle();
  await rm(deps.root, { recursive: true, force: true });
  await assert.rejects(
    JobRuntime.open('job-1', rt.config, { ...(await newDeps(deps.root)), state: copyState(deps.state, 'job-1') }),
    /update log holds 1 gradient\(s\) but none of its checkpoints survives; refusing to start/,
  );
  w.dispose();
});

test('pause, resume and cancel are on disk when they resolve', async () => {
  const { rt, deps } = await createJob();
  await rt.pause();
  assert.equal(((await deps.store.loadLatest())!.state.runtime as { status: string }).status, 'paused');
  await rt.resume();
  assert.equal(((await deps.store.loadLatest())!.state.runtime as { status: string }).status, 'running');
  await rt.cancel();
  assert.equal(((await deps.store.loadLatest())!.state.runtime as { status: string }).status, 'cancelled');
});

for (const checkpointAt of ['before', 'after'] as const) {
  test(`quarantine with gradients in the buffer: the step leaves them out; replay from a checkpoint taken ${checkpointAt} the exclusion gives the same weights bit for bit`, async () => {
    const warnings: string[] = [];
    const deps = await newDeps(undefined, warnings);
    const config = tinyConfig({ optimizer: { kind: 'sgd', learningRate: 0.5, momentum: 0 }, aggregation: { mode: 'buffered', rule: 'mean', bufferSize: 4 } as JobConfig['aggregation'], stop: { maxEpochs: 20, targetAccuracy: null } });
    const rt = await JobRuntime.create('job-1', config, deps);
    runtimes.push(rt);
    const w0 = weightsOf(rt);
    const BAD = 'w-bad' as WorkerId;
    const push = async (w: WorkerId, value: number): Promise<PushAck> => {
      const ack = rt.requestLease(w, null);
      assert.ok(ack.ok, codeOf(ack));
      return rt.push(w, handcrafted(rt, ack.lease, () => value));
    };
    const seen: string[] = [];
    const note = (a: PushAck): void => void seen.push(a.ok ? `${a.status}@${a.version}` : a.code);
    note(await push(W1, 0.01));
    note(await push(BAD, -50)); // finite, under the norm bound: only a spot check can tell
    note(await push(W1, 0.01));
    if (checkpointAt === 'before') await rt.checkpoint();
    assert.equal(rt.excludeWorker(W2), 0, 'a worker with nothing in the buffer loses nothing');
    assert.equal(rt.excludeWorker(BAD), 1);
    assert.equal(rt.excludeWorker(BAD), 0, 'already dropped');
    assert.match(warnings.join('\n'), /dropped 1 buffered gradient\(s\) of quarantined worker w-bad before step v1 \(log #2\)/);
    if (checkpointAt === 'after') await rt.checkpoint();
    await rt.settle();
    assert.equal(rt.summary().aggregation.buffered, 2);
    note(await push(W1, 0.01));
    note(await push(W1, 0.01)); // the 4th gradient left in the buffer completes step 1
    note(await push(W2, 0.02)); // waits for step 2
    assert.deepEqual(seen, ['buffered@1', 'buffered@1', 'buffered@1', 'buffered@1', 'applied@1', 'buffered@2']);
    assert.equal(rt.currentVersion, 1);
    // Step 1 is the mean of the four honest gradients: every weight moved by -lr x 0.01, none by the -50.
    const w1 = weightsOf(rt);
    for (let i = 0; i < w1.length; i++) assert.ok(Math.abs(w1[i]! - (w0[i]! - 0.5 * 0.01)) < 1e-6, `weight ${i}: ${w0[i]} -> ${w1[i]}`);
    // The log keeps the record (its shard is done) with the exclusion marked.
    const log = deps.state.updatesAfter('job-1', 0);
    assert.deepEqual(log.map((u) => [u.workerId, u.step, u.excluded ?? false]), [[W1, 1, false], [BAD, 1, true], [W1, 1, false], [W1, 1, false], [W1, 1, false], [W2, 2, false]]);
    assert.equal(rt.summary().shards.done, 6);
    // Crash: reopen from that checkpoint (mid-buffer, 3 records in its span) and replay the log, in
    // a copy of the folder (both runtimes go on and may checkpoint the same version).
    await rt.settle();
    const copy = await mkdtemp(path.join(os.tmpdir(), 'flock-job-'));
    dirs.push(copy);
    await cp(deps.root, copy, { recursive: true });
    const back = await JobRuntime.open('job-1', config, { ...(await newDeps(copy)), state: copyState(deps.state, 'job-1') });
    runtimes.push(back);
    assert.equal(back.currentVersion, 1);
    assert.equal(back.summary().aggregation.buffered, 1);
    assert.deepEqual(weightsOf(back), w1, 'bit-exact');
    // And the next step comes out the same on both.
    for (const r of [rt, back]) {
      for (let i = 0; i < 3; i++) {
        const ack = r.requestLease(W1, null);
        assert.ok(ack.ok);
        assert.ok((await r.push(W1, handcrafted(r, ack.lease, (k) => (k % 5) * 0.003))).ok);
      }
    }
    assert.equal(back.currentVersion, 2);
    assert.deepEqual(weightsOf(back), weightsOf(rt), 'bit-exact after the next step');
  });
}

// ---- combined updates (a gateway's pre-aggregation, server/cluster/pre-aggregator.ts) -------------

test('buffered/mean: a combined update of K gradients makes the same step as the K pushed one by one (bit for bit at discount 1); replay is bit-exact; each lease is acked once', async () => {
  const { sumInOrder } = await import('../cluster/pre-aggregator.ts');
  const agg = { mode: 'buffered', rule: 'mean', bufferSize: 3 } as const;
  const one = await createJob({ aggregation: JSON.parse(JSON.stringify(agg)) });
  const start = Float32Array.from(weightsOf(one.rt));
  const deps = await newDeps();
  const comb = await JobRuntime.create('job-1', tinyConfig({ aggregation: JSON.parse(JSON.stringify(agg)) }), { ...deps, initialWeights: start });
  runtimes.push(comb);
  assert.deepEqual(weightsOf(comb), weightsOf(one.rt), 'same start');
  const fill = (k: number) => (i: number) => Math.sin(i * 0.37 + k) * 0.05 + (k - 2) * 0.01;
  const floatsOf = (p: GradientPush) => new Float32Array(toBytes(p.data).slice().buffer);
  const workers = [W1, W2, W1];
  for (let round = 0; round < 2; round++) {
    // One by one on `one`; the same three gradients (same shards, same base version) summed on `comb`.
    const pushes: GradientPush[] = [];
    const combined: { workerId: WorkerId; leaseId: string; baseVersion: number; numSamples: number; loss: number | null; norm: number }[] = [];
    for (let k = 0; k < 3; k++) {
      const la = one.rt.requestLease(workers[k]!, null);
      const lb = comb.requestLease(workers[k]!, null);
      assert.ok(la.ok && lb.ok);
      assert.equal(la.lease.shardIndex, lb.lease.shardIndex);
      const pa = handcrafted(one.rt, la.lease, fill(k + 3 * round));
      const pb = handcrafted(comb, lb.lease, fill(k + 3 * round));
      assert.equal((await one.rt.push(workers[k]!, pa)).ok, true);
      pushes.push(pb);
      combined.push({ workerId: workers[k]!, leaseId: lb.lease.leaseId, baseVersion: lb.lease.baseVersion, numSamples: lb.lease.numSamples, loss: 1, norm: 1 });
    }
    const sum = sumInOrder(pushes.map(floatsOf));
    const res = await comb.pushCombined({ baseVersion: round, leases: combined, sum: new Uint8Array(sum.buffer) });
    assert.ok(res.ok, JSON.stringify(res));
    assert.deepEqual(res.acks.map((a) => (a.ok ? `${a.status}@${a.version}` : a.code)), ['applied', 'applied', 'applied'].map((s) => `${s}@${round + 1}`));
    assert.equal(comb.currentVersion, round + 1);
    assert.deepEqual(weightsOf(comb), weightsOf(one.rt), `step ${round + 1}: the combined update's step equals the one-by-one step`);
    // A lease already answered inside a combined update is a duplicate for its worker, with the same version.
    const dup = await comb.push(workers[1]!, pushes[1]!);
    assert.ok(dup.ok && dup.status === 'duplicate' && dup.version === round + 1);
    // And a combined update naming it again changes nothing: the owner names it to be pushed alone.
    const again = await comb.pushCombined({ baseVersion: round, leases: combined.slice(0, 2), sum: new Uint8Array(sum.buffer) });
    assert.deepEqual(again, { ok: false, individually: combined.slice(0, 2).map((c) => c.leaseId) });
    assert.equal(comb.currentVersion, round + 1);
  }
  // The log: one record per lease (each shard once), the sum on the last of each combined update.
  const log = deps.state.updatesAfter('job-1', 0);
  assert.deepEqual(log.map((u) => u.weight ?? 1), [0, 0, 3, 0, 0, 3]);
  assert.deepEqual(log.map((u) => u.gradient !== null), [false, false, true, false, false, true]);
  assert.equal(new Set(log.map((u) => `${u.epoch}/${u.shard}`)).size, 6);
  // Crash: reopen from checkpoint v0 and replay the log: the same weights, bit for bit.
  const back = await JobRuntime.open('job-1', comb.config, { ...(await newDeps(deps.root)), state: copyState(deps.state, 'job-1') });
  runtimes.push(back);
  assert.equal(back.currentVersion, 2);
  assert.deepEqual(weightsOf(back), weightsOf(comb), 'replay is bit-exact');
  // A combined update refused as a whole changes nothing: a job whose rule needs individual gradients.
  const robust = await createJob({ aggregation: { mode: 'buffered', rule: 'centered-clip', bufferSize: 3 } as JobConfig['aggregation'] });
  const l = robust.rt.requestLease(W1, null);
  assert.ok(l.ok);
  const refused = await robust.rt.pushCombined({ baseVersion: 0, leases: [{ workerId: W1, leaseId: l.lease.leaseId, baseVersion: 0, numSamples: l.lease.numSamples, loss: 1, norm: 1 }], sum: new Uint8Array(toBytes(handcrafted(robust.rt, l.lease, fill(0)).data)) });
  assert.deepEqual(refused, { ok: false, individually: [l.lease.leaseId] });
  assert.equal(robust.deps.state.updatesAfter('job-1', 0).length, 0);
});

test('buffered/mean: a combined update that half-fills the buffer waits in it; a crash in between refills it from the log (bit-exact)', async () => {
  const { sumInOrder } = await import('../cluster/pre-aggregator.ts');
  const agg = { mode: 'buffered', rule: 'mean', bufferSize: 4 } as const;
  const { rt, deps } = await createJob({ aggregation: JSON.parse(JSON.stringify(agg)) });
  const fill = (k: number) => (i: number) => Math.cos(i * 0.11 + k) * 0.05;
  const leases = [W1, W2].map((w) => rt.requestLease(w, null));
  const gs = leases.map((l, k) => (assert.ok(l.ok), new Float32Array(toBytes(handcrafted(rt, l.lease, fill(k)).data).slice().buffer)));
  const res = await rt.pushCombined({ baseVersion: 0, leases: leases.map((l, k) => (assert.ok(l.ok), { workerId: [W1, W2][k]!, leaseId: l.lease.leaseId, baseVersion: 0, numSamples: l.lease.numSamples, loss: 1, norm: 1 })), sum: new Uint8Array(sumInOrder(gs).buffer) });
  assert.ok(res.ok && res.acks.every((a) => a.ok && a.status === 'buffered' && a.version === 1));
  assert.equal(rt.summary().aggregation.buffered, 2, 'the combined update counts as its 2 gradients');
  await rt.checkpoint();
  await rt.settle();
  const back = await JobRuntime.open('job-1', rt.config, { ...(await newDeps(deps.root)), state: copyState(deps.state, 'job-1') });
  runtimes.push(back);
  assert.equal(back.summary().aggregation.buffered, 2);
  // Two single pushes complete the step on both, the same way.
  for (const w of [W1, W2]) {
    const a = rt.requestLease(w, null);
    const b = back.requestLease(w, null);
    assert.ok(a.ok && b.ok);
    assert.equal((await rt.push(w, handcrafted(rt, a.lease, fill(5)))).ok, true);
    assert.equal((await back.push(w, handcrafted(back, b.lease, fill(5)))).ok, true);
  }
  assert.equal(rt.currentVersion, 1);
  assert.deepEqual(weightsOf(back), weightsOf(rt), 'bit-exact after the step');
});

test('buffered/mean: an expired lease and its reissue (one shard) in one combined update: the second is sent back to be judged alone, nothing logged', async () => {
  const { sumInOrder } = await import('../cluster/pre-aggregator.ts');
  const { rt, deps } = await createJob({ aggregation: { mode: 'buffered', rule: 'mean', bufferSize: 4 } as JobConfig['aggregation'] });
  const first = rt.requestLease(W1, null);
  assert.ok(first.ok);
  deps.clock.advance(rt.config.leaseTimeoutMs + 1);
  rt.sweep();
  // Other workers take leases until the expired shard comes round again.
  let holder = W2;
  let again = rt.requestLease(holder, null);
  for (let i = 0; again.ok && !(again.lease.shardIndex === first.lease.shardIndex && again.lease.epoch === first.lease.epoch) && i < 200; i++) {
    holder = `w-extra-${i}` as typeof W2;
    again = rt.requestLease(holder, null);
  }
  assert.ok(again.ok, JSON.stringify(again));
  assert.equal(again.lease.shardIndex, first.lease.shardIndex, 'the expired shard is handed out again');
  const fill = (k: number) => (i: number) => Math.sin(i * 0.07 + k) * 0.05;
  const gs = [first, again].map((l, k) => (assert.ok(l.ok), new Float32Array(toBytes(handcrafted(rt, l.lease, fill(k)).data).slice().buffer)));
  const res = await rt.pushCombined({
    baseVersion: 0,
    leases: [first, again].map((l, k) => (assert.ok(l.ok), { workerId: k === 0 ? W1 : holder, leaseId: l.lease.leaseId, baseVersion: 0, numSamples: l.lease.numSamples, loss: 1, norm: 1 })),
    sum: new Uint8Array(sumInOrder(gs).buffer),
  });
  assert.deepEqual(res, { ok: false, individually: [again.lease.leaseId] });
  assert.equal(deps.state.updatesAfter('job-1', 0).length, 0, 'nothing logged');
});

test('look-ahead: leases carry the weights predicted s steps ahead (s = the average staleness); the model is untouched; a restart gives the same lease weights', async () => {
  const initial = await (async () => {
    const { rt } = await createJob();
    return new Float32Array(weightsOf(rt));
  })();
  const make = async (lookahead: boolean) => {
    const deps = await newDeps();
    const rt = await JobRuntime.create('job-1', tinyConfig({ aggregation: { mode: 'async', lookahead } as JobConfig['aggregation'] }), { ...deps, initialWeights: initial });
    runtimes.push(rt);
    return { rt, deps };
  };
  const ahead = await make(true);
  const plain = await make(false);
  const modelOf = async (rt: JobRuntime, deps: { store: JobRuntimeDeps['store'] }) => {
    await rt.checkpoint();
    const cp = (await deps.store.loadLatest())!;
    return [...new Float32Array(cp.weights.slice().buffer)];
  };
  // The same handcrafted gradients, in the same lease pattern, to both jobs.
  const feed = async (rt: JobRuntime, pattern: 'alone' | 'pairs', rounds: number) => {
    for (let r = 0; r < rounds; r++) {
      const workers = pattern === 'alone' ? [W1] : [W1, W2];
      const leases = workers.map((w) => {
        const ack = rt.requestLease(w, null);
        assert.ok(ack.ok);
        return ack.lease;
      });
      for (const [i, l] of leases.entries()) assert.equal(codeOf(await rt.push(workers[i]!, handcrafted(rt, l, (k) => Math.sin(k + r) * 0.01))), 'ok');
    }
  };
  // One worker: staleness 0, so a lease carries the model itself.
  for (const j of [ahead, plain]) await feed(j.rt, 'alone', 3);
  assert.deepEqual(weightsOf(ahead.rt), await modelOf(ahead.rt, ahead.deps));
  // Two workers leasing the same version, pushing in turn: every second gradient is 1 stale.
  for (const j of [ahead, plain]) await feed(j.rt, 'pairs', 3);
  const before = weightsOf(plain.rt);
  for (const j of [ahead, plain]) await feed(j.rt, 'alone', 1);
  const model = await modelOf(ahead.rt, ahead.deps);
  assert.deepEqual(model, await modelOf(plain.rt, plain.deps), 'look-ahead leaves the model alone');
  assert.deepEqual(weightsOf(plain.rt), model);
  // s: the staleness average over 3 fresh, then 3 x (0, 1), then 1 fresh (weight 1/16 each).
  let s = 0;
  for (const tau of [0, 0, 0, 0, 1, 0, 1, 0, 1, 0]) s += (tau - s) / 16;
  // Heavy-ball SGD: the momentum buffer after a step is (before - after) / lr, so the prediction
  // s steps ahead is after + s * (after - before).
  const leased = weightsOf(ahead.rt);
  assert.ok(s > 0.1);
  for (let i = 0; i < model.length; i++) assert.ok(Math.abs(leased[i]! - (model[i]! + s * (model[i]! - before[i]!))) < 1e-5, `weight ${i}: ${leased[i]} vs ${model[i]! + s * (model[i]! - before[i]!)}`);
  // A restart (checkpoint + replayed log) predicts the same for the same version.
  await ahead.rt.settle();
  const back = await JobRuntime.open('job-1', ahead.rt.config, { ...(await newDeps(ahead.deps.root)), state: copyState(ahead.deps.state, 'job-1') });
  runtimes.push(back);
  assert.deepEqual(weightsOf(back), leased);
});
