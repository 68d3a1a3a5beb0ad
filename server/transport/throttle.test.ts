// The dashboard throttle: many marks -> at most one firing per interval, the first without delay.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../shared/clock.ts';
import { Throttle } from './throttle.ts';

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

test('coalesces marks and fires at most once per interval, reporting the oldest change', async () => {
  const clock = new FakeClock(0);
  const fired: { at: number; eventAt: number }[] = [];
  const t = new Throttle(clock, 250, (eventAt) => fired.push({ at: clock.now(), eventAt }));
  t.mark();
  clock.advance(0);
  await tick();
  assert.deepEqual(fired, [{ at: 0, eventAt: 0 }]);
  // 100 marks within the next second, one every 10 ms.
  for (let i = 1; i <= 100; i++) {
    clock.advance(10);
    t.mark();
    await tick();
  }
  clock.advance(250);
  await tick();
  // 1 + one per 250 ms over ~1.25 s: never more than 4 a second.
  assert.ok(fired.length >= 5 && fired.length <= 6, `fired ${fired.length}`);
  for (let i = 1; i < fired.length; i++) assert.ok(fired[i]!.at - fired[i - 1]!.at >= 250);
  // eventAt is the first change not yet sent: at most one interval before the firing.
  for (const f of fired.slice(1)) assert.ok(f.at - f.eventAt <= 250 && f.eventAt <= f.at);
});

test('cancel() drops the pending firing', async () => {
  const clock = new FakeClock(0);
  let n = 0;
  const t = new Throttle(clock, 250, () => n++);
  t.mark();
  t.cancel();
  clock.advance(1000);
  await tick();
  assert.equal(n, 0);
  assert.equal(t.pending, false);
});
