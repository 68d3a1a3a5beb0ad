// The turn queue for worker events: arrival order, a turn ends once its budget is spent (the rest
// waits for the next turn, so timers run in between), results and errors reach the caller, and a
// real event loop under a flood of 5 ms tasks keeps its timers within one turn's budget.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkTurns } from './work-turns.ts';

/** A manual clock and scheduler: each turn is run by hand. */
function manual(budgetMs: number): { turns: WorkTurns; clock: { t: number }; next(): void; pending(): number } {
  const clock = { t: 0 };
  const scheduled: (() => void)[] = [];
  const turns = new WorkTurns({ budgetMs, now: () => clock.t, schedule: (fn) => scheduled.push(fn) });
  return { turns, clock, next: () => scheduled.shift()!(), pending: () => scheduled.length };
}

test('tasks run in arrival order, in turns of at most the budget; later tasks wait for the next turn', async () => {
  const m = manual(10);
  const ran: number[] = [];
  const results = [1, 2, 3, 4, 5].map((i) => m.turns.run(() => {
    ran.push(i);
    m.clock.t += 4; // each task costs 4 ms
    return i * 10;
  }));
  assert.equal(m.turns.depth, 5);
  assert.equal(m.pending(), 1, 'one turn scheduled for all of them');
  m.next();
  assert.deepEqual(ran, [1, 2, 3], '4 + 4 + 4 ms: the third crosses the 10 ms budget and ends the turn');
  assert.equal(m.turns.depth, 2);
  assert.equal(m.pending(), 1);
  m.next();
  assert.deepEqual(ran, [1, 2, 3, 4, 5]);
  assert.equal(m.pending(), 0, 'nothing left: no turn scheduled');
  assert.deepEqual(await Promise.all(results), [10, 20, 30, 40, 50]);
  assert.equal(m.turns.counts.deferred, 2);

  m.turns.run(() => ran.push(6));
  assert.equal(m.pending(), 1, 'a task after the queue emptied schedules a new turn');
  m.next();
  assert.deepEqual(ran, [1, 2, 3, 4, 5, 6]);
});

test('a heavy task (a push that completes a buffer) starts a turn of its own; asked when its turn comes', async () => {
  const m = manual(10);
  const ran: string[] = [];
  const task = (name: string, ms: number) => () => {
    ran.push(name);
    m.clock.t += ms;
  };
  let steps = true;
  m.turns.run(task('a', 1));
  m.turns.run(task('b', 1));
  m.turns.run(task('step', 20), () => steps);
  m.turns.run(task('c', 1));
  m.turns.run(task('not-now', 1), () => false);
  m.next();
  assert.deepEqual(ran, ['a', 'b'], 'the turn ends before the heavy task, not after it');
  m.next();
  assert.deepEqual(ran, ['a', 'b', 'step'], 'the heavy task opens the next turn; its 20 ms spend the budget');
  m.next();
  assert.deepEqual(ran, ['a', 'b', 'step', 'c', 'not-now'], 'a task that says it is not heavy runs on in the turn');
  // Heavy but first in its turn: runs at once.
  steps = true;
  m.turns.run(task('step2', 20), () => steps);
  m.next();
  assert.deepEqual(ran.at(-1), 'step2');
  // A predicate that throws counts as not heavy.
  m.turns.run(task('d', 1));
  m.turns.run(task('e', 1), () => {
    throw new Error('gone');
  });
  m.next();
  assert.deepEqual(ran.slice(-2), ['d', 'e']);
});

test('a throwing task rejects its own promise only; async tasks resolve with their value', async () => {
  const m = manual(10);
  const a = m.turns.run(() => {
    throw new Error('boom');
  });
  const b = m.turns.run(async () => {
    await Promise.resolve();
    return 'later';
  });
  m.next();
  await assert.rejects(a, /boom/);
  assert.equal(await b, 'later');
});

test('on a real event loop, a flood of 5 ms tasks leaves timers waiting about one turn, not the whole flood', async () => {
  const turns = new WorkTurns({ budgetMs: 8 });
  const busy = (ms: number): void => {
    const end = performance.now() + ms;
    while (performance.now() < end) {
      /* synchronous work, as a push's check, log append and optimizer step are */
    }
  };
  const lags: number[] = [];
  let expected = performance.now() + 5;
  const timer = setInterval(() => {
    const now = performance.now();
    lags.push(now - expected);
    expected = now + 5;
  }, 5);
  const done = Promise.all(Array.from({ length: 60 }, () => turns.run(() => busy(5)))); // 300 ms of work
  await done;
  clearInterval(timer);
  assert.ok(turns.counts.turns >= 20, `ran in ${turns.counts.turns} turns`);
  assert.ok(lags.length >= 10, `the timer fired ${lags.length} times during 300 ms of queued work`);
  // A turn is at most budget + one task (8 + 5 ms); generous for a loaded machine, far below 300.
  assert.ok(Math.max(...lags) < 100, `longest timer delay ${Math.max(...lags).toFixed(1)} ms`);
});
