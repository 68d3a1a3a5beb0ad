// Telemetry series: one point per sample while running, none for an idle stopped job, thinning.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../shared/clock.ts';
import { TelemetryBook, type Sampled } from './job-telemetry.ts';

const job = (over: Partial<Sampled> = {}): Sampled => ({ id: 'j', status: 'running', version: 1, samplesPerSec: 100, workers: 2, updates: { applied: 1, refused: {} }, ...over });

test('samples running jobs, skips idle stopped ones, since() returns only newer points', () => {
  const clock = new FakeClock(0);
  const book = new TelemetryBook(clock);
  let notified = 0;
  book.onSample(() => notified++);
  for (let i = 0; i < 5; i++) {
    clock.advance(1000);
    book.sample([job({ version: i })]);
  }
  assert.equal(book.points('j').length, 5);
  assert.equal(notified, 5);
  assert.deepEqual(book.since('j', 3000).map((p) => p.at), [4000, 5000]);
  const paused = job({ status: 'paused', version: 4, samplesPerSec: 0 });
  clock.advance(1000);
  book.sample([paused]);
  clock.advance(1000);
  book.sample([paused]);
  assert.equal(book.points('j').length, 6, 'the first paused point is kept, flat repeats are not');
});

test('past 3600 points the older half is thinned, newest points kept', () => {
  const clock = new FakeClock(0);
  const book = new TelemetryBook(clock);
  for (let i = 0; i < 3601; i++) {
    clock.advance(1000);
    book.sample([job({ version: i })]);
  }
  const pts = book.points('j');
  assert.ok(pts.length < 3000 && pts.length > 2600, String(pts.length));
  assert.equal(pts.at(-1)!.version, 3600);
  for (let i = 1; i < pts.length; i++) assert.ok(pts[i]!.at > pts[i - 1]!.at);
});
