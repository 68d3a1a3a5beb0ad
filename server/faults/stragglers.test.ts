// Fault injection, stragglers: 1 of 4 workers is 10x slower. Asynchronous aggregation must not
// wait for it: throughput stays >= 70% of the 3 fast workers alone, and no gradient staler than the
// bound is applied (the straggler's too-stale gradients are refused, its shards reissued).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mnistSlice, sleep, sliceCoordinator, slowWorker } from './fixtures.ts';
import { startNodeWorker, type NodeWorker } from '../../shared/training/node-worker.ts';

const BOUND = 6;
const OVERRIDES = { batchSize: 64, stop: { maxEpochs: 50, targetAccuracy: null }, staleness: { rule: 'inverse' as const, maxStaleness: BOUND }, evalEveryVersions: 100_000 };

/**
 * One coordinator, 3 fast workers and a straggler that is paused and resumed in alternating
 * phases, so both throughputs are measured side by side on this shared, noisy machine.
 */
async function measure(): Promise<{ fast: number; mixed: number; maxStaleness: number; slowAccepted: number; slowRefused: number }> {
  const coord = await sliceCoordinator(await mnistSlice(12_800, 1000), OVERRIDES);
  const job = coord.registry.all()[0]!;
  const workers: NodeWorker[] = [];
  try {
    for (let i = 0; i < 3; i++) workers.push(await startNodeWorker(coord.url));
    const slow = await slowWorker(coord.url, 10);
    slow.loop.pause();
    await sleep(1500); // warm-up
    const rate = { fast: [0, 0], mixed: [0, 0] };
    for (let phase = 0; phase < 8; phase++) {
      const withStraggler = phase % 2 === 1;
      if (withStraggler) slow.loop.resume();
      else slow.loop.pause();
      await sleep(300); // let the change take hold
      const s0 = job.summary().samplesApplied;
      const t0 = Date.now();
      await sleep(2000);
      const r = withStraggler ? rate.mixed : rate.fast;
      r[0]! += job.summary().samplesApplied - s0;
      r[1]! += Date.now() - t0;
    }
    const maxStaleness = Math.max(...coord.state.updatesAfter(job.id, 0).map((u) => u.staleness));
    const out = {
      fast: (rate.fast[0]! * 1000) / rate.fast[1]!,
      mixed: (rate.mixed[0]! * 1000) / rate.mixed[1]!,
      maxStaleness,
      slowAccepted: slow.loop.stats.accepted,
      slowRefused: slow.loop.stats.refused,
    };
    slow.kill();
    return out;
  } finally {
    for (const w of workers) w.kill();
    await coord.close();
  }
}

test('a 10x straggler costs < 30% throughput and no gradient above the staleness bound is applied', { timeout: 120_000 }, async () => {
  const m = await measure();
  console.log(
    `stragglers: 3 fast ${m.fast.toFixed(0)} samples/s; 3 fast + 1 slow ${m.mixed.toFixed(0)} samples/s ` +
      `(${((100 * m.mixed) / m.fast).toFixed(0)}%); max applied staleness ${m.maxStaleness} (bound ${BOUND}); ` +
      `straggler accepted ${m.slowAccepted}, refused ${m.slowRefused}`,
  );
  assert.ok(m.mixed >= 0.7 * m.fast, `${m.mixed} < 70% of ${m.fast}`);
  assert.ok(m.maxStaleness <= BOUND, `applied a gradient of staleness ${m.maxStaleness}`);
  assert.ok(m.slowAccepted + m.slowRefused > 0, 'the straggler did work');
});
