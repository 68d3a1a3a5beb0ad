// Fault injection, Byzantine volunteers: a real coordinator and 5 Node workers train the MNIST MLP
// on a slice of MNIST with the same budget (epochs) side by side, clean and with one attacker
// supplying about 20% of the gradients: (a) sign-flipped x100, (b) one fixed direction at the norm
// bound, (c) random noise at the bound, (d) ALIE. The default rule (robust buffered) must end
// within 2 points of its clean run for (a)-(c) and 5 for (d); plain `async` is run the same way to
// show the collapse the default prevents. Prints the whole table.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mnistSlice, sleep, sliceCoordinator, attackingWorker } from './fixtures.ts';
import { ATTACKS, ATTACK_TITLES, makeAttack, type AttackName } from './attacks.ts';
import { startNodeWorker, type NodeWorker } from '../../shared/training/node-worker.ts';
import { AggregationSchema, DEFAULT_AGGREGATION, type AggregationConfig } from '../aggregation/aggregation-config.ts';
import type { Dataset } from '../data/dataset.ts';

const TRAIN = Number(process.env.FLOCK_BYZ_TRAIN ?? 9_600);
const TEST = 5_000;
const EPOCHS = Number(process.env.FLOCK_BYZ_EPOCHS ?? 5);
const HONEST = 4;
const NORM_BOUND = 1000;
const OVERRIDES = { batchSize: 64, stop: { maxEpochs: EPOCHS, targetAccuracy: null }, evalEveryVersions: 10, leaseTimeoutMs: 10_000, maxGradNorm: NORM_BOUND };

interface Outcome {
  accuracy: number;
  /** Share of the accepted gradients that came from the attacker. */
  attackerShare: number;
  seconds: number;
}

let data: Dataset | null = null;

async function run(aggregation: AggregationConfig, attack: AttackName | null): Promise<Outcome> {
  data ??= await mnistSlice(TRAIN, TEST);
  const t0 = Date.now();
  const coord = await sliceCoordinator(data, { ...OVERRIDES, aggregation });
  const job = coord.registry.all()[0]!;
  const workers: NodeWorker[] = [];
  let attacker: (NodeWorker & { sent: () => number }) | null = null;
  try {
    for (let i = 0; i < HONEST; i++) workers.push(await startNodeWorker(coord.url));
    if (attack) workers.push((attacker = await attackingWorker(coord.url, makeAttack(attack, NORM_BOUND))));
    else workers.push(await startNodeWorker(coord.url));
    while (job.status === 'running') await sleep(100);
    await job.settle();
    const s = job.summary();
    const bad = attacker ? attacker.loop.stats.accepted : 0;
    // The mean of the last three evaluations (about the last epoch in the default mode): one final
    // evaluation on a small budget swings by a point from run to run, which the bars cannot absorb.
    const last = job.metricHistory().evaluations.slice(-3).map((e) => e.testAccuracy ?? 0);
    return { accuracy: last.length > 0 ? last.reduce((a, b) => a + b, 0) / last.length : (s.metrics.testAccuracy ?? 0), attackerShare: bad / Math.max(1, s.updates.applied), seconds: (Date.now() - t0) / 1000 };
  } finally {
    for (const w of workers) w.kill();
    await coord.close();
  }
}

const pct = (x: number): string => `${(100 * x).toFixed(2)}%`;

test('Byzantine volunteers: the default rule holds against 20% attackers; plain async collapses', { timeout: 600_000 }, async () => {
  const rules: { name: string; cfg: AggregationConfig }[] = [
    { name: 'default (buffered, centered-clip)', cfg: DEFAULT_AGGREGATION },
    { name: 'async', cfg: AggregationSchema.parse({ mode: 'async' }) },
  ];
  const table: Record<string, Record<string, Outcome>> = {};
  for (const r of rules) {
    table[r.name] = { clean: await run(r.cfg, null) };
    for (const a of ATTACKS) table[r.name]![a] = await run(r.cfg, a);
  }
  const lines = [`byzantine: MNIST MLP, ${TRAIN} train / ${TEST} test examples, ${EPOCHS} epochs, ${HONEST} honest workers + 1 attacker; accuracy = mean of the last 3 evaluations (every 10 versions)`];
  for (const r of rules) {
    const row = table[r.name]!;
    lines.push(`  ${r.name}: clean ${pct(row.clean!.accuracy)} (${row.clean!.seconds.toFixed(0)} s)`);
    for (const a of ATTACKS) {
      const o = row[a]!;
      lines.push(`    ${ATTACK_TITLES[a]}: ${pct(o.accuracy)} (${((o.accuracy - row.clean!.accuracy) * 100).toFixed(2)} points; attacker sent ${pct(o.attackerShare)} of accepted gradients; ${o.seconds.toFixed(0)} s)`);
    }
  }
  console.log(lines.join('\n'));

  const def = table[rules[0]!.name]!;
  for (const a of ATTACKS) {
    const o = def[a]!;
    assert.ok(o.attackerShare > 0.12, `${a}: the attacker supplied only ${pct(o.attackerShare)}`);
    // The bars: 2 points for (a)-(c), 5 for ALIE. (b), one fixed direction, is what the
    // worker history (history-screen.ts) is for: clipping alone bounds each push, not a bias
    // repeated every step (it cost 1.5-5 points before the history weighted it down, and still
    // 1-2.5 under CPU load until the weight fell as the square of the distance past the knee).
    const allowed = a === 'alie' ? 0.05 : 0.02;
    assert.ok(o.accuracy >= def.clean!.accuracy - allowed, `default rule under ${ATTACK_TITLES[a]}: ${pct(o.accuracy)} vs clean ${pct(def.clean!.accuracy)}`);
  }
  assert.ok(def.clean!.accuracy > 0.85, `clean accuracy ${pct(def.clean!.accuracy)}`);
  // Plain async under the same attacks: at least the fixed direction and noise at the bound wreck it.
  const plain = table[rules[1]!.name]!;
  const collapsed = ATTACKS.filter((a) => plain[a]!.accuracy < plain.clean!.accuracy - 0.1);
  assert.ok(collapsed.length >= 2, `async collapsed under ${collapsed.join(', ') || 'none'}`);
});
