// The scheduler's decisions, alone and in a simulated pool on a fake clock (ShareWindow included):
// shares follow the weights, workers do not flip jobs inside the dwell time, refused and stopped
// jobs are left.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../shared/clock.ts';
import { chooseJob, goalShares, DEFAULT_POLICY, type JobLoad, type SchedulerPolicy, type WorkerPlace } from './scheduler.ts';
import { ShareWindow } from './share-window.ts';
import type { JobStatus } from '../../shared/protocol/messages.ts';

const job = (id: string, over: Partial<JobLoad> = {}): JobLoad => ({ id, weight: 1, status: 'running', samples: 0, workerMs: 0, workers: 0, ...over });
const fresh: WorkerPlace = { current: null, dwellMs: 0, refused: new Set() };

interface SimJob {
  readonly id: string;
  readonly weight: number;
  /** One lease's wall time on this job, ms (the job's model cost). */
  readonly leaseMs: number;
  status: JobStatus;
}

/**
 * A pool of identical workers on a fake clock: each asks the scheduler before every lease (as the
 * transport does on lease:request), pays `switchMs` when it changes job (model build + weights),
 * and reports 64 samples per lease. Returns each job's samples over the last window, the moves,
 * and the lowest and highest sliding-minute share of the first job seen each second after 90 s.
 */
function simulate(opts: { jobs: SimJob[]; workers: number; seconds: number; switchMs?: number; policy?: SchedulerPolicy; at?: (t: number, workers: readonly { id: string; job: string | null }[]) => void }) {
  const clock = new FakeClock(0);
  const win = new ShareWindow(clock);
  const policy = opts.policy ?? DEFAULT_POLICY;
  const workers = Array.from({ length: opts.workers }, (_, i) => ({ id: `w${i}`, busyUntil: 0, job: null as string | null }));
  let moves = 0;
  const range = { lo: 1, hi: 0 };
  const stepMs = 10;
  for (let t = 0; t <= opts.seconds * 1000; t += stepMs) {
    clock.advance(t - clock.now());
    opts.at?.(t, workers);
    for (const w of workers) {
      if (w.busyUntil > t) continue;
      if (w.job !== null && w.busyUntil > 0) win.noteApplied(w.id, w.job, 64);
      const loads = win.loads();
      const view = opts.jobs.map((j) => ({ id: j.id, weight: j.weight, status: j.status, samples: loads.get(j.id)?.samples ?? 0, workerMs: loads.get(j.id)?.workerMs ?? 0, workers: loads.get(j.id)?.workers ?? 0 }));
      const choice = chooseJob(view, { current: w.job, dwellMs: win.dwellMs(w.id), refused: new Set() }, policy);
      if (!choice) {
        w.busyUntil = t + 1000;
        w.job = null;
        win.place(w.id, null);
        continue;
      }
      let cost = 0;
      if (choice.jobId !== w.job) {
        if (w.job !== null) moves++;
        w.job = choice.jobId;
        win.place(w.id, w.job);
        cost = opts.switchMs ?? 1500;
      }
      w.busyUntil = t + cost + opts.jobs.find((j) => j.id === w.job)!.leaseMs;
    }
    if (t >= 90_000 && t % 1000 === 0) {
      const l = win.loads();
      const first = l.get(opts.jobs[0]!.id)?.samples ?? 0;
      const share = first / opts.jobs.reduce((s, j) => s + (l.get(j.id)?.samples ?? 0), 0);
      range.lo = Math.min(range.lo, share);
      range.hi = Math.max(range.hi, share);
    }
  }
  const loads = win.loads();
  const samples = (id: string): number => loads.get(id)?.samples ?? 0;
  return { samples, share: (id: string) => samples(id) / opts.jobs.reduce((s, j) => s + samples(j.id), 0), moves, workers, range };
}

test('weights 3:1, four equal workers: 75% / 25% of applied samples, and nobody keeps moving', () => {
  const sim = simulate({ jobs: [{ id: 'a', weight: 3, leaseMs: 500, status: 'running' }, { id: 'b', weight: 1, leaseMs: 500, status: 'running' }], workers: 4, seconds: 180 });
  assert.ok(sim.range.lo >= 0.725 && sim.range.hi <= 0.775, `sliding-minute share of a in [${sim.range.lo.toFixed(3)}, ${sim.range.hi.toFixed(3)}]`);
  assert.ok(sim.moves <= 2, `${sim.moves} moves`);
});

test('weights 3:1 with only two workers: time-slicing keeps the sliding-minute share within 10%', () => {
  const sim = simulate({ jobs: [{ id: 'a', weight: 3, leaseMs: 500, status: 'running' }, { id: 'b', weight: 1, leaseMs: 500, status: 'running' }], workers: 2, seconds: 300 });
  assert.ok(sim.range.lo >= 0.675 && sim.range.hi <= 0.825, `sliding-minute share of a in [${sim.range.lo.toFixed(3)}, ${sim.range.hi.toFixed(3)}]`);
  // Well under the dwell bound (one move per worker per 8 s): a move every ~10 s in the pool.
  assert.ok(sim.moves <= 300 / 8, `${sim.moves} moves`);
});

test('weights 1:1 when one model costs 3x the other: samples still split evenly, not workers', () => {
  const sim = simulate({ jobs: [{ id: 'mlp', weight: 1, leaseMs: 300, status: 'running' }, { id: 'cnn', weight: 1, leaseMs: 900, status: 'running' }], workers: 8, seconds: 240 });
  assert.ok(sim.range.lo >= 0.45 && sim.range.hi <= 0.55, `sliding-minute share of mlp in [${sim.range.lo.toFixed(3)}, ${sim.range.hi.toFixed(3)}]`);
});

test('a big pool rebalances: 40 workers all on a, then b starts (1:1): half move over, a few at a time', () => {
  const jobs: SimJob[] = [{ id: 'a', weight: 1, leaseMs: 500, status: 'running' }, { id: 'b', weight: 1, leaseMs: 500, status: 'paused' }];
  const seen: number[] = [];
  const sim = simulate({
    jobs, workers: 40, seconds: 200,
    at: (t, ws) => {
      if (t === 30_000) {
        seen.push(ws.filter((w) => w.job === 'a').length);
        jobs[1]!.status = 'running';
      }
    },
  });
  assert.deepEqual(seen, [40]);
  const share = sim.share('a');
  assert.ok(share >= 0.45 && share <= 0.55, `share of a ${share.toFixed(3)}`);
  const onB = sim.workers.filter((w) => w.job === 'b').length;
  assert.ok(onB >= 17 && onB <= 23, `${onB} workers on b`);
  assert.ok(sim.moves <= 30, `${sim.moves} moves: about the 20 needed, no swing of the whole pool`);
});

test('a job that pauses loses its workers within a lease; resumed, it gets its share back; finished, the same', () => {
  const jobs: SimJob[] = [{ id: 'a', weight: 3, leaseMs: 500, status: 'running' }, { id: 'b', weight: 1, leaseMs: 500, status: 'running' }];
  const seen: Record<string, number> = {};
  const count = (ws: readonly { job: string | null }[], id: string): number => ws.filter((w) => w.job === id).length;
  const sim = simulate({
    jobs, workers: 4, seconds: 240,
    at: (t, ws) => {
      if (t === 60_000) {
        seen.bBefore = count(ws, 'b');
        jobs[1]!.status = 'paused';
      }
      if (t === 61_000) seen.bPaused = count(ws, 'b');
      if (t === 62_000) jobs[1]!.status = 'running';
      if (t === 180_000) {
        seen.bResumed = count(ws, 'b');
        jobs[0]!.status = 'finished';
      }
      if (t === 181_000) seen.aFinished = count(ws, 'a');
    },
  });
  assert.equal(seen.bBefore, 1);
  assert.equal(seen.bPaused, 0, 'paused: its worker moved within one lease');
  assert.equal(seen.bResumed, 1, 'resumed: one worker came back');
  assert.equal(seen.aFinished, 0, 'finished: all its workers moved');
  assert.equal(count(sim.workers, 'b'), 4);
});

test('hysteresis: no move inside the dwell time, nor for a gain under the margin', () => {
  // b is badly under-served (no worker), the worker sits on a with three others.
  const jobs = [job('a', { weight: 1, workers: 4, samples: 4000, workerMs: 240_000 }), job('b', { weight: 1, workers: 0, samples: 0, workerMs: 0 })];
  assert.deepEqual(chooseJob(jobs, { current: 'a', dwellMs: DEFAULT_POLICY.minDwellMs - 1, refused: new Set() }), { jobId: 'a', why: 'stay' });
  assert.deepEqual(chooseJob(jobs, { current: 'a', dwellMs: DEFAULT_POLICY.minDwellMs, refused: new Set() }), { jobId: 'b', why: 'move' });
  // 3:1 weights over 4 workers placed 3+1, window slightly off target (72%): moving would only make it worse.
  const steady = [job('a', { weight: 3, workers: 3, samples: 7200, workerMs: 180_000 }), job('b', { weight: 1, workers: 1, samples: 2800, workerMs: 60_000 })];
  assert.equal(chooseJob(steady, { current: 'a', dwellMs: 60_000, refused: new Set() })?.jobId, 'a');
  assert.equal(chooseJob(steady, { current: 'b', dwellMs: 60_000, refused: new Set() })?.jobId, 'b');
  // 1:1 weights, 11 workers: 6+5 -> 5+6 only trades a surplus for a shortfall: no move.
  const even = { current: 'a', dwellMs: 60_000, refused: new Set<string>() };
  assert.equal(chooseJob([job('a', { workers: 6 }), job('b', { workers: 5 })], even)?.jobId, 'a');
  // 7+4 -> 6+5 is closer by one worker's share (1/11): moves under the default margin (half of
  // that), not under a margin of 1.5 of it.
  const near = [job('a', { workers: 7 }), job('b', { workers: 4 })];
  assert.equal(chooseJob(near, even)?.jobId, 'b');
  assert.equal(chooseJob(near, even, { ...DEFAULT_POLICY, margin: 1.5 })?.jobId, 'a');
});

test('refused jobs are never chosen, even when most under-served; nothing left -> null', () => {
  const jobs = [job('a', { weight: 100 }), job('b', { weight: 1, workers: 5 })];
  assert.deepEqual(chooseJob(jobs, fresh), { jobId: 'a', why: 'join' });
  assert.deepEqual(chooseJob(jobs, { current: null, dwellMs: 0, refused: new Set(['a']) }), { jobId: 'b', why: 'join' });
  // On a job it then refused: leaves at once, dwell or not.
  assert.deepEqual(chooseJob(jobs, { current: 'a', dwellMs: 0, refused: new Set(['a']) }), { jobId: 'b', why: 'forced' });
  assert.equal(chooseJob(jobs, { current: 'a', dwellMs: 0, refused: new Set(['a', 'b']) }), null);
});

test('finished, cancelled and paused jobs are not runnable: their workers are sent elsewhere at once', () => {
  for (const status of ['finished', 'cancelled', 'paused'] as const) {
    const jobs = [job('a', { status, workers: 3, weight: 10 }), job('b', { workers: 1 })];
    assert.deepEqual(chooseJob(jobs, { current: 'a', dwellMs: 0, refused: new Set() }), { jobId: 'b', why: 'forced' }, status);
    assert.equal(chooseJob([jobs[0]!], { current: 'a', dwellMs: 0, refused: new Set() }), null, `${status}, alone`);
  }
});

test('new workers fill 3:1 weights as 3 + 1', () => {
  const jobs = [job('a', { weight: 3 }), job('b', { weight: 1 })];
  const placed: string[] = [];
  for (let i = 0; i < 4; i++) {
    const view = jobs.map((j) => ({ ...j, workers: placed.filter((p) => p === j.id).length }));
    placed.push(chooseJob(view, fresh)!.jobId);
  }
  assert.deepEqual(placed.sort(), ['a', 'a', 'a', 'b']);
});

test('goal shares: the targets, corrected by the window shortfall once it holds enough samples', () => {
  const p = { gain: 1, minWindowSamples: 1000 };
  assert.deepEqual(goalShares([job('a', { weight: 3, samples: 10 }), job('b', { samples: 0 })], p), [0.75, 0.25]);
  const g = goalShares([job('a', { weight: 3, samples: 6000 }), job('b', { samples: 4000 })], p);
  assert.ok(Math.abs(g[0]! - 0.9) < 1e-9 && Math.abs(g[1]! - 0.1) < 1e-9, String(g));
  const capped = goalShares([job('a', { weight: 3, samples: 6000 }), job('b', { samples: 4000 })], p, 0.05);
  assert.ok(Math.abs(capped[0]! - 0.8) < 1e-9 && Math.abs(capped[1]! - 0.2) < 1e-9, String(capped));
});

test('ShareWindow: samples and producing worker-time over the last minute only; placements and dwell', () => {
  const clock = new FakeClock(0);
  const w = new ShareWindow(clock, 60_000);
  w.place('x', 'a');
  w.place('y', 'a');
  clock.advance(10_000);
  w.noteApplied('x', 'a', 100);
  w.place('y', 'b'); // y never produced on a: its 10 s there count for no job's rate
  assert.equal(w.jobOf('y'), 'b');
  assert.equal(w.dwellMs('x'), 10_000);
  assert.equal(w.dwellMs('y'), 0);
  clock.advance(20_000); // t = 30 s
  w.noteApplied('y', 'b', 50);
  w.noteApplied('x', 'b', 7); // a push to a job the worker is not placed on: samples only
  let l = w.loads();
  assert.deepEqual(l.get('a'), { samples: 100, workerMs: 20_000, workers: 1 });
  assert.deepEqual(l.get('b'), { samples: 57, workerMs: 0, workers: 1 });
  clock.advance(45_000); // t = 75 s: window [15 s, 75 s]
  w.place('x', null);
  l = w.loads();
  assert.deepEqual(l.get('a'), { samples: 0, workerMs: 60_000, workers: 0 });
  assert.deepEqual(l.get('b'), { samples: 57, workerMs: 45_000, workers: 1 });
  assert.equal(w.jobOf('x'), null);
  clock.advance(61_000); // everything but y's open stint has left the window
  l = w.loads();
  assert.equal(l.get('a'), undefined);
  assert.deepEqual(l.get('b'), { samples: 0, workerMs: 60_000, workers: 1 });
});
