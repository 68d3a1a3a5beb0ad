// The screen's weights as a function of distance: tau / d up to the knee, knee x tau^2 / d^2 past it
// (a far-out worker's pull shrinks), unchanged for workers near the others.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { screenWeights } from './history-screen.ts';
import { AggregationSchema, DEFAULT_AGGREGATION, aggregationFor, aggregationOf } from './aggregation-config.ts';

/** Five workers at distances 0.8, 0.9, 1, 1.1, 1.2 from the origin along their own axes, and one at `far`. */
function momenta(far: number): Float32Array[] {
  const dists = [0.8, 0.9, 1, 1.1, 1.2, far];
  return dists.map((d, i) => {
    const m = new Float32Array(8);
    m[i] = d;
    return m;
  });
}

test("screen: past the knee a far worker's pull (weight x distance) shrinks; without it, it stays at tau", () => {
  const pulls = (knee: number | undefined): number[] =>
    [4, 8, 16, 32].map((far) => {
      const moms = momenta(far);
      const w = screenWeights(moms, knee);
      const d = Math.hypot(...moms[5]!);
      return w[5]! * d;
    });
  const flat = pulls(undefined);
  const knee = pulls(2);
  // tau / d: the pull is tau whatever the distance.
  for (const p of flat) assert.ok(Math.abs(p - flat[0]!) < 1e-6, `pulls without a knee: ${flat.join(', ')}`);
  // knee 2: halves each time the distance doubles, and is below the flat pull.
  for (let i = 1; i < knee.length; i++) assert.ok(Math.abs(knee[i]! / knee[i - 1]! - 0.5) < 0.02, `pulls with knee 2: ${knee.join(', ')}`);
  assert.ok(knee[0]! < flat[0]!);
});

test('screen: workers within the knee weigh the same with or without it; continuous at the knee', () => {
  const moms = momenta(1.5);
  assert.deepEqual(screenWeights(moms, 2), screenWeights(moms));
  // tau = 1.05 (the median of the six distances), so the knee sits at 2.1.
  const farWeight = (far: number): number => {
    const moms2 = momenta(far);
    const w = screenWeights(moms2, 2);
    return w[5]!;
  };
  const inside = farWeight(2.0 * 1.05 - 1e-3);
  const outside = farWeight(2.0 * 1.05 + 1e-3);
  assert.ok(Math.abs(inside - outside) < 1e-3, `${inside} vs ${outside}`);
});

test('screenKnee: new robust jobs get 2; mean jobs and configs stored without the key have none', () => {
  assert.equal(DEFAULT_AGGREGATION.screenKnee, 2);
  assert.equal(aggregationFor({ mode: 'buffered' }).screenKnee, 2);
  assert.equal(aggregationFor({ mode: 'local' }).screenKnee, 2);
  assert.equal(aggregationFor({ mode: 'buffered', rule: 'mean' }).screenKnee, undefined);
  assert.equal(aggregationOf({ aggregation: AggregationSchema.parse({ mode: 'buffered', rule: 'centered-clip', workerMomentum: 0.9 }) }).screenKnee, undefined);
});
