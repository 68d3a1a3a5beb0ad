// Per-worker statistics: counts, mean staleness, samples/s, and the change feed (rows + removals).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../shared/clock.ts';
import { WorkerStatsBook, samplesPerSec } from './worker-stats.ts';
import type { GradientPush, PushAck } from '../../shared/protocol/messages.ts';

const caps = { backend: 'wasm' as const, runtime: 'browser' as const, adapter: { vendor: 'google', architecture: 'swiftshader', description: '', isFallbackAdapter: true }, probes: [{ backend: 'wasm' as const, samplesPerSec: 5000 }, { backend: 'webgpu' as const, samplesPerSec: 450 }] };
const push = (n: number): GradientPush => ({ leaseId: 'l', baseVersion: 0, numSamples: n, loss: 1, computeMs: 5, specs: [], data: new ArrayBuffer(0) });
const applied = (tau: number): PushAck => ({ ok: true, status: 'applied', version: 1, staleness: tau, scale: 1 });
const stale: PushAck = { ok: false, code: 'STALE_GRADIENT', message: 'stale' };

test('counts leases, accepted/refused, mean staleness and samples per worker', () => {
  const clock = new FakeClock();
  const book = new WorkerStatsBook(clock);
  book.hello('w1', caps, clock.now());
  book.joined('w1', 'job');
  for (const tau of [0, 2, 4]) {
    book.leased('w1', 'job', { ok: true } as never);
    clock.advance(100);
    book.pushed('w1', 'job', push(128), applied(tau));
  }
  book.leased('w1', 'job', { ok: false, code: 'NO_WORK', message: '' });
  book.pushed('w1', 'job', push(128), stale);
  const r = book.row('w1')!;
  assert.equal(r.leasesGranted, 3);
  assert.equal(r.leasesDone, 4);
  assert.equal(r.accepted, 3);
  assert.equal(r.refused, 1);
  assert.equal(r.meanStaleness, 2);
  assert.equal(r.samples, 384);
  assert.equal(r.probeSamplesPerSec, 5000);
  assert.equal(r.adapter, 'CPU (WASM SIMD)', 'a WASM worker computes on the CPU, whatever GPU adapter it saw');
  assert.equal(r.jobId, 'job');
});

test('samples/s over recent pushes: samples after the first / span (at least 1 s)', () => {
  assert.equal(samplesPerSec([{ at: 0, samples: 100 }], 500), 0);
  assert.equal(samplesPerSec([{ at: 0, samples: 100 }, { at: 1000, samples: 100 }, { at: 2000, samples: 100 }], 2000), 100);
  // Pushes older than the 30 s window are ignored.
  assert.equal(samplesPerSec([{ at: 0, samples: 100 }, { at: 1000, samples: 100 }], 40_000), 0);
});

test('changes(): rows changed after the cursor, and workers that left the job', () => {
  const clock = new FakeClock();
  const book = new WorkerStatsBook(clock);
  book.hello('a', caps, 0);
  book.joined('a', 'j1');
  book.hello('b', caps, 0);
  book.joined('b', 'j1');
  const c0 = book.cursor;
  assert.deepEqual(book.changes('j1', 0).rows.map((r) => r.workerId).sort(), ['a', 'b']);
  assert.equal(book.changes('j1', c0).rows.length, 0);
  book.pushed('a', 'j1', push(10), applied(0));
  book.left('b');
  const ch = book.changes('j1', c0);
  assert.deepEqual(ch.rows.map((r) => r.workerId), ['a']);
  assert.deepEqual(ch.removed, ['b']);
  assert.equal(ch.full, false);
  // A worker moving to another job leaves j1's table.
  const c1 = book.cursor;
  book.joined('a', 'j2');
  assert.deepEqual(book.changes('j1', c1).removed, ['a']);
  assert.deepEqual(book.changes('j2', c1).rows.map((r) => r.workerId), ['a']);
  assert.equal(book.size, 1);
});
