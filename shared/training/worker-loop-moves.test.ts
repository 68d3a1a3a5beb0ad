// The worker loop between jobs, against an in-memory coordinator: an unpinned loop moves when told
// (JOB_REASSIGNED) and when its job finishes, pauses or is refused by its device, if job:get offers
// another job; a pinned loop never moves and never announces itself movable.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from './tf.ts';
import { initNodeBackend } from './node-backend.ts';
import { WorkerLoop, type LoopOptions, type WorkerState } from './worker-loop.ts';
import { trainableSpecs } from './model.ts';
import { systemClock } from '../clock.ts';
import { ErrorCode, fail, type Failure } from '../protocol/errors.ts';
import type { CoordinatorLink } from './link.ts';
import type { JobDescriptor, JobGetRequest, LeaseAck, LeaseRequest, RefuseJob } from '../protocol/messages.ts';

function tinyJob(id: string): JobDescriptor {
  const m = tf.sequential({ layers: [tf.layers.flatten({ inputShape: [4, 4, 1] }), tf.layers.dense({ units: 3, activation: 'softmax' })] });
  const job: JobDescriptor = {
    id, name: `job ${id}`, description: '', modelTopology: m.toJSON(null, false), task: 'classification', loss: 'categoricalCrossentropy', fromLogits: false, batchSize: 8,
    data: { featureShape: [4, 4, 1], features: { dtype: 'uint8', scale: 1 / 255 }, target: { kind: 'classes', numClasses: 3, dtype: 'uint8' } }, trainableSpecs: trainableSpecs(m),
  };
  m.dispose();
  return job;
}

/**
 * A coordinator in memory with jobs by id. `offer` answers job:get without a job id; `answer`
 * may refuse a lease request (else a lease of the requested job is granted).
 */
function fakeLink(jobs: Record<string, JobDescriptor>, offer: () => string, answer: (req: LeaseRequest, n: number) => Failure | null) {
  const requests: LeaseRequest[] = [];
  const gets: JobGetRequest[] = [];
  const refusals: RefuseJob[] = [];
  const pushedTo: string[] = [];
  const leaseJob = new Map<string, string>();
  let n = 0;
  const link: CoordinatorLink = {
    connected: true,
    hello: async () => ({ ok: true, workerId: 'w1', serverTime: Date.now() }),
    getJob: async (req) => {
      gets.push(req);
      return { ok: true, job: jobs[req.jobId ?? offer()]! };
    },
    requestLease: async (req): Promise<LeaseAck> => {
      requests.push(req);
      const no = answer(req, n++);
      if (no) return no;
      const leaseId = `l${n}`;
      leaseJob.set(leaseId, req.jobId!);
      return {
        ok: true,
        lease: { leaseId, jobId: req.jobId!, epoch: 0, shardIndex: n, baseVersion: 0, deadlineAt: Date.now() + 10_000, numSamples: 8, x: new Uint8Array(8 * 16).fill(3), y: new Uint8Array(8).map((_, i) => i % 3) },
        weights: null,
      };
    },
    pushGradient: async (p) => {
      pushedTo.push(leaseJob.get(p.leaseId)!);
      return { ok: true, status: 'applied', version: 1, staleness: 0, scale: 1 };
    },
    releaseLease: async () => ({ ok: true }),
    refuseJob: async (req) => {
      refusals.push(req);
      return { ok: true };
    },
    onConnect: () => {},
    onDisconnect: () => {},
    onJobUpdate: () => {},
    close: () => {},
  };
  return { link, requests, gets, refusals, pushedTo };
}

async function runLoop(link: CoordinatorLink, extra: Partial<LoopOptions> = {}) {
  const states: [WorkerState, string | undefined][] = [];
  const adopted: string[] = [];
  const loop = new WorkerLoop(link, {
    clock: systemClock,
    capabilities: { backend: 'wasm', runtime: 'node' },
    maxLeases: 6,
    maxBackoffMs: 20,
    listener: { state: (s, d) => states.push([s, d]), job: (j) => adopted.push(j.id) },
    ...extra,
  });
  await loop.run();
  return { states, adopted };
}

const jobs = (): Record<string, JobDescriptor> => ({ a: tinyJob('a'), b: tinyJob('b') });

test('unpinned: JOB_REASSIGNED moves the loop to the job job:get names; the old model is disposed', async () => {
  await initNodeBackend('wasm');
  let offered = 'a';
  const fc = fakeLink(jobs(), () => offered, (req, n) => {
    if (req.jobId === 'a' && n === 3) {
      offered = 'b';
      return fail(ErrorCode.JobReassigned, 'job b needs this worker more');
    }
    return null;
  });
  const before = tf.memory().numTensors;
  const { adopted } = await runLoop(fc.link);
  assert.deepEqual(adopted, ['a', 'b']);
  assert.deepEqual(fc.pushedTo, ['a', 'a', 'a', 'b', 'b', 'b']);
  assert.ok(fc.requests.every((r) => r.movable === true), 'an unpinned loop says it may be moved');
  assert.deepEqual(fc.gets, [{ jobId: undefined }, {}]);
  assert.equal(tf.memory().numTensors, before, 'both models disposed, nothing leaked');
});

test('unpinned: a reassignment the coordinator takes back (job:get names the same job) keeps the model', async () => {
  const fc = fakeLink(jobs(), () => 'a', (_req, n) => (n === 2 ? fail(ErrorCode.JobReassigned, 'move') : null));
  const { adopted } = await runLoop(fc.link);
  assert.deepEqual(adopted, ['a']);
  assert.equal(fc.pushedTo.length, 6);
});

test('unpinned: finished or paused job -> moves to the other job; last job finished with nowhere to go -> finished', async () => {
  let offered = 'a';
  const fc = fakeLink(jobs(), () => offered, (req, n) => {
    if (req.jobId === 'a' && n >= 2) {
      offered = 'b';
      return fail(ErrorCode.JobPaused, 'paused by admin', 10);
    }
    if (req.jobId === 'b' && n >= 5) return fail(ErrorCode.JobFinished, 'finished');
    return null;
  });
  const { states, adopted } = await runLoop(fc.link, { maxLeases: 100 });
  assert.deepEqual(adopted, ['a', 'b']);
  assert.deepEqual(fc.pushedTo, ['a', 'a', 'b', 'b']);
  assert.deepEqual(states.at(-1), ['finished', 'finished']);
  assert.ok(!states.some(([s]) => s === 'paused-by-admin'), 'it moved instead of waiting');
});

test('unpinned: a job its device refuses is left for another one; refused ones are never taken again', async () => {
  const fc = fakeLink(jobs(), () => 'b', () => null);
  let first = true;
  const { states, adopted } = await runLoop(fc.link, {
    prepareJob: async (job) => {
      if (job.id === 'a' || first) {
        first = false;
        return { ok: false, reason: `cannot run ${job.id}` };
      }
      return { ok: true };
    },
    jobId: undefined,
  });
  // The first job offered (b) was refused; job:get offers b again: nowhere else -> unsupported.
  assert.deepEqual(fc.refusals, [{ jobId: 'b', reason: 'cannot run b' }]);
  assert.deepEqual(adopted, []);
  assert.equal(states.at(-1)?.[0], 'unsupported');

  let offered = 'a';
  const fc2 = fakeLink(jobs(), () => offered, () => null);
  const run2 = await runLoop(fc2.link, {
    prepareJob: async (job) => {
      if (job.id === 'a') {
        offered = 'b';
        return { ok: false, reason: 'no kernel for a' };
      }
      return { ok: true };
    },
  });
  assert.deepEqual(fc2.refusals, [{ jobId: 'a', reason: 'no kernel for a' }]);
  assert.deepEqual(run2.adopted, ['b']);
  assert.equal(fc2.pushedTo.length, 6);
  assert.ok(fc2.pushedTo.every((j) => j === 'b'));
});

test('unpinned: MODEL_UNSUPPORTED_ON_DEVICE on one job moves the loop to another', async () => {
  let offered = 'a';
  const fc = fakeLink(jobs(), () => offered, (req) => {
    if (req.jobId === 'a') {
      offered = 'b';
      return fail(ErrorCode.Unsupported, 'this worker reported it cannot train job a');
    }
    return null;
  });
  const { adopted } = await runLoop(fc.link);
  assert.deepEqual(adopted, ['a', 'b']);
  assert.ok(fc.pushedTo.every((j) => j === 'b') && fc.pushedTo.length === 6);
});

test('pinned: never movable, never asks for another job; finished ends the loop, paused waits', async () => {
  let n = 0;
  const fc = fakeLink(jobs(), () => 'b', (_req, i) => {
    n = i;
    if (i === 2) return fail(ErrorCode.JobPaused, 'paused by admin', 10);
    if (i >= 4) return fail(ErrorCode.JobFinished, 'finished');
    return null;
  });
  const { states, adopted } = await runLoop(fc.link, { jobId: 'a', maxLeases: 100 });
  assert.deepEqual(adopted, ['a']);
  assert.deepEqual(fc.gets, [{ jobId: 'a' }]);
  assert.ok(fc.requests.every((r) => r.movable === undefined && r.jobId === 'a'));
  assert.deepEqual(fc.pushedTo, ['a', 'a', 'a']);
  assert.ok(states.some(([s]) => s === 'paused-by-admin'));
  assert.deepEqual(states.at(-1), ['finished', 'finished']);
  assert.equal(n, 4);
});
