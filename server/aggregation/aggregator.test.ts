import { countSketch, screenWeights, sketchTable } from './history-screen.ts';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Aggregator, type Contribution } from './aggregator.ts';
import { AggregationSchema, type AggregationConfig } from './aggregation-config.ts';
import { createOptimizer, type OptimizerConfig } from './optimizers.ts';
import { stalenessScale } from './staleness.ts';
import { mulberry32 } from '../data/sharder.ts';

const N = 50;
const rnd = mulberry32(7);
const vec = (f: () => number, n = N): Float32Array => Float32Array.from({ length: n }, f);
const noise = (s: number): Float32Array => vec(() => (rnd() * 2 - 1) * s);

/**
 * The displacement a gradient causes over a trajectory: weights after [g, then `later` background
 * gradients] minus weights after [zeros, then the same background]. Linear in g for momentum SGD.
 */
function displacement(opt: OptimizerConfig, warmup: Float32Array[], g: Float32Array, scale: number, later: Float32Array[]): Float32Array {
  const run = (first: Float32Array): Float32Array => {
    const agg = new Aggregator(AggregationSchema.parse({ mode: 'async' }), opt, new Float32Array(N), 0, 0);
    let seq = 0;
    for (const w of warmup) agg.admit({ seq: ++seq, gradient: w, scale: 1, lr: opt.learningRate });
    agg.admit({ seq: ++seq, gradient: first, scale, lr: opt.learningRate });
    for (const b of later) agg.admit({ seq: ++seq, gradient: b, scale: 1, lr: opt.learningRate });
    return (agg as unknown as { trainParams: Float32Array }).trainParams;
  };
  const a = run(g);
  const z = run(new Float32Array(N));
  return a.map((x, i) => x - z[i]!);
}

/** The same, with the OLD rule: full gradient, step lr x scale. */
function displacementLrRule(opt: OptimizerConfig, warmup: Float32Array[], g: Float32Array, scale: number, later: Float32Array[]): Float32Array {
  const run = (first: Float32Array): Float32Array => {
    const o = createOptimizer(opt, N);
    const p = new Float32Array(N);
    for (const w of warmup) o.apply(p, w, opt.learningRate);
    o.apply(p, first, opt.learningRate * scale);
    for (const b of later) o.apply(p, b, opt.learningRate);
    return p;
  };
  const a = run(g);
  const z = run(new Float32Array(N));
  return a.map((x, i) => x - z[i]!);
}

const ratio = (a: Float32Array, b: Float32Array): number => {
  let ab = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) (ab += a[i]! * b[i]!), (bb += b[i]! * b[i]!);
  return ab / bb;
};

test('discount: with momentum SGD a gradient at staleness tau moves the weights by scale(tau) of the fresh move', () => {
  const opt: OptimizerConfig = { kind: 'sgd', learningRate: 0.1, momentum: 0.9 };
  const warm = [noise(1), noise(1), noise(1)];
  const later = Array.from({ length: 60 }, () => noise(1));
  const g = noise(1);
  const tau = 3;
  const s = stalenessScale('inverse', tau);
  const fresh = displacement(opt, warm, g, 1, later);
  const stale = displacement(opt, warm, g, s, later);
  assert.ok(Math.abs(ratio(stale, fresh) - s) < 1e-3, `ratio ${ratio(stale, fresh)} vs scale ${s}`);
  // The old rule (lr x scale) left the gradient at full weight in the momentum: far from 0.25.
  const old = ratio(displacementLrRule(opt, warm, g, s, later), displacementLrRule(opt, warm, g, 1, later));
  assert.ok(old > 0.9, `old rule discounted to ${old}`);
});

test('discount: with Adam (second moment set by history) the stale move is scale(tau) of the fresh one', () => {
  const opt: OptimizerConfig = { kind: 'adam', learningRate: 0.01 };
  // A history of larger gradients fixes v; the probe gradient is small next to it.
  const warm = Array.from({ length: 200 }, () => noise(1));
  const later = Array.from({ length: 40 }, () => noise(1));
  const g = noise(0.05);
  for (const tau of [1, 3, 8]) {
    const s = stalenessScale('inverse', tau);
    const r = ratio(displacement(opt, warm, g, s, later), displacement(opt, warm, g, 1, later));
    assert.ok(Math.abs(r - s) < 0.02 * s + 0.005, `tau ${tau}: ratio ${r} vs scale ${s}`);
  }
  const s = stalenessScale('inverse', 3);
  const old = ratio(displacementLrRule(opt, warm, g, s, later), displacementLrRule(opt, warm, g, 1, later));
  assert.ok(old > 0.85, `old rule discounted Adam to ${old}`);
});

function feed(cfg: AggregationConfig, cs: Contribution[], opt: OptimizerConfig = { kind: 'adam', learningRate: 0.01 }): { agg: Aggregator; params: Float32Array; steps: number[] } {
  const params = new Float32Array(N);
  const agg = new Aggregator(cfg, opt, params, 0, 0);
  const steps = cs.map((c) => agg.admit(c).step);
  return { agg, params, steps };
}

const contributions = (n: number, make: (i: number) => Float32Array = () => noise(1)): Contribution[] => Array.from({ length: n }, (_, i) => ({ seq: i + 1, gradient: make(i), scale: 1, lr: 0.01 }));

test('buffered: K gradients make one step; the version moves once per K and each names its step', () => {
  const cs = contributions(10);
  const { agg, steps } = feed(AggregationSchema.parse({ mode: 'buffered', bufferSize: 4 }), cs);
  assert.deepEqual(steps, [1, 1, 1, 1, 2, 2, 2, 2, 3, 3]);
  assert.equal(agg.version, 2);
  assert.equal(agg.buffered, 2);
  assert.equal(agg.seq, 10);
});

test('buffered mean of K equals one optimizer step on the mean gradient', () => {
  const cs = contributions(3);
  const { params } = feed(AggregationSchema.parse({ mode: 'buffered', bufferSize: 3 }), cs, { kind: 'sgd', learningRate: 0.5, momentum: 0 });
  for (let i = 0; i < N; i++) {
    const m = (cs[0]!.gradient[i]! + cs[1]!.gradient[i]! + cs[2]!.gradient[i]!) / 3;
    assert.ok(Math.abs(params[i]! + 0.01 * m) < 1e-7, `coordinate ${i}: ${params[i]} vs ${-0.01 * m}`);
  }
});

test('restart mid-buffer: snapshot + refill + the rest replays to the same weights, bit for bit', () => {
  for (const rule of ['mean', 'median', 'trimmed-mean', 'centered-clip'] as const) {
    const cfg = AggregationSchema.parse({ mode: 'buffered', bufferSize: 5, rule });
    const cs = contributions(23);
    const whole = feed(cfg, cs);
    // Crash after 12 admitted: 2 steps taken, 2 in the buffer.
    const first = feed(cfg, cs.slice(0, 12));
    const snap = first.agg.snapshot();
    assert.deepEqual([snap.seq, snap.buffered], [12, 2]);
    const params = first.params.slice();
    const back = new Aggregator(cfg, { kind: 'adam', learningRate: 0.01 }, params, first.agg.version, snap.seq);
    back.restoreOptimizer(first.agg.optimizerState());
    back.restoreSnapshot(snap);
    back.refill(cs.slice(12 - snap.buffered, 12));
    for (const c of cs.slice(12)) back.admit(c);
    assert.equal(back.version, whole.agg.version);
    assert.deepEqual([...params], [...whole.params], rule);
  }
});

test('robust rules bound a x100 sign-flipped gradient; the mean does not', () => {
  const honest = (): Float32Array => vec(() => 1 + (rnd() - 0.5) * 0.2);
  const cs = contributions(6, (i) => (i === 5 ? vec(() => -100) : honest()));
  const sgd: OptimizerConfig = { kind: 'sgd', learningRate: 1, momentum: 0 };
  const moved = (rule: 'mean' | 'median' | 'trimmed-mean' | 'centered-clip'): number => {
    const { params } = feed(AggregationSchema.parse({ mode: 'buffered', bufferSize: 6, rule }), cs, sgd);
    return -params.reduce((s, x) => s + x, 0) / N / 0.01; // the step along the honest direction, in units of lr
  };
  assert.ok(moved('mean') < -10, `mean ${moved('mean')}`);
  for (const r of ['median', 'trimmed-mean', 'centered-clip'] as const) assert.ok(moved(r) > 0.3, `${r}: ${moved(r)}`);
});

test('a pre-fix record (no discount logged) replays with its logged lr', () => {
  const g = noise(1);
  const params = new Float32Array(N);
  const agg = new Aggregator(AggregationSchema.parse({ mode: 'async' }), { kind: 'sgd', learningRate: 1, momentum: 0 }, params, 0, 0);
  agg.admit({ seq: 1, gradient: g, scale: null, lr: 0.25 });
  for (let i = 0; i < N; i++) assert.ok(Math.abs(params[i]! + 0.25 * g[i]!) < 1e-7, `coordinate ${i}`);
});

test('flush: what the buffer holds becomes one step, as the last shard does; an empty buffer changes nothing', () => {
  const cfg = AggregationSchema.parse({ mode: 'buffered', bufferSize: 4, rule: 'centered-clip' });
  const cs = contributions(6);
  const flushed = feed(cfg, cs);
  assert.equal(flushed.agg.flush(), true);
  assert.deepEqual([flushed.agg.version, flushed.agg.buffered], [2, 0]);
  // The same six, the sixth admitted as the job's last: the same partial step, bit for bit.
  const params = new Float32Array(N);
  const lastShard = new Aggregator(cfg, { kind: 'adam', learningRate: 0.01 }, params, 0, 0);
  cs.forEach((c, i) => lastShard.admit(c, i === cs.length - 1));
  assert.deepEqual([...params], [...flushed.params]);
  const before = flushed.params.slice();
  assert.equal(flushed.agg.flush(), false);
  assert.equal(flushed.agg.version, 2);
  assert.deepEqual([...flushed.params], [...before]);
  // The next gradient names the step after the flushed one.
  assert.equal(flushed.agg.admit({ seq: 7, gradient: noise(1), scale: 1, lr: 0.01 }).step, 3);
});

test('exclude: a quarantined worker\'s buffered gradients are dropped before the step that would combine them', () => {
  const cfg = AggregationSchema.parse({ mode: 'buffered', bufferSize: 4, rule: 'mean' });
  const sgd: OptimizerConfig = { kind: 'sgd', learningRate: 0.5, momentum: 0 };
  const honest = contributions(4);
  const bad = vec(() => -1000);
  const params = new Float32Array(N);
  const agg = new Aggregator(cfg, sgd, params, 0, 0);
  agg.admit({ ...honest[0]!, seq: 1 });
  agg.admit({ seq: 2, gradient: bad, scale: 1, lr: 0.01 });
  agg.admit({ ...honest[1]!, seq: 3 });
  assert.deepEqual(agg.bufferedSeqs(), [1, 2, 3]);
  assert.deepEqual(agg.exclude(new Set([2, 99])), [2]);
  assert.deepEqual(agg.exclude(new Set([2])), [], 'already gone');
  assert.deepEqual([agg.buffered, agg.version], [2, 0]);
  // The buffer needs K again: the step waits for two more honest gradients.
  assert.deepEqual(agg.admit({ ...honest[2]!, seq: 4 }), { step: 1, stepped: false });
  assert.deepEqual(agg.admit({ ...honest[3]!, seq: 5 }), { step: 1, stepped: true });
  // Exactly the step of the four honest gradients alone (the same values, bit for bit).
  const clean = feed(cfg, honest.map((c, i) => ({ ...c, seq: i + 1 })), sgd);
  assert.deepEqual([...params], [...clean.params]);
  // Without the exclusion the -1000 gradient drags every weight up.
  const dirty = feed(cfg, [honest[0]!, { seq: 2, gradient: bad, scale: 1, lr: 0.01 }, honest[1]!, honest[2]!].map((c, i) => ({ ...c, seq: i + 1 })), sgd);
  assert.ok(dirty.params.every((x, i) => x > params[i]! + 1), 'the bad gradient would have moved the weights');
});

test('exclude: replay of the log (excluded records marked) gives the same weights bit for bit, from a checkpoint taken before or after the exclusion', () => {
  for (const rule of ['mean', 'median', 'trimmed-mean', 'centered-clip'] as const) {
    const cfg = AggregationSchema.parse({ mode: 'buffered', bufferSize: 5, rule });
    const opt: OptimizerConfig = { kind: 'adam', learningRate: 0.01 };
    const cs = contributions(23, (i) => (i % 7 === 3 ? noise(40) : noise(1)));
    // Live: 13 admitted (2 steps, 3 buffered: #11 #12 #13); #11 and #13 excluded; then the rest.
    const liveParams = new Float32Array(N);
    const live = new Aggregator(cfg, opt, liveParams, 0, 0);
    const snaps: { snap: ReturnType<Aggregator['snapshot']>; params: Float32Array; opt: ReturnType<Aggregator['optimizerState']>; version: number }[] = [];
    const take = (): void => void snaps.push({ snap: live.snapshot(), params: liveParams.slice(), opt: live.optimizerState(), version: live.version });
    for (const c of cs.slice(0, 13)) live.admit(c);
    take(); // before the exclusion: the buffer spans #11..#13
    assert.deepEqual(live.exclude(new Set([11, 13])), [11, 13]);
    take(); // after: the buffer holds #12, its span is #12..#13
    assert.deepEqual([snaps[0]!.snap.buffered, snaps[1]!.snap.buffered], [3, 2]);
    for (const c of cs.slice(13, 15)) live.admit(c);
    assert.deepEqual(live.exclude(new Set([14])), [14]);
    for (const c of cs.slice(15)) live.admit(c);
    // The log as the runtime leaves it: each record, marked when its gradient was dropped.
    const excluded = new Set([11, 13, 14]);
    const log = cs.map((c) => ({ ...c, excluded: excluded.has(c.seq) }));
    // From scratch.
    const fromZero = feed(cfg, log, opt);
    assert.equal(fromZero.agg.version, live.version, rule);
    assert.deepEqual([...fromZero.params], [...liveParams], `${rule}: replay from v0`);
    // From either checkpoint: refill its span (excluded ones stay out), then replay the rest.
    for (const cp of snaps) {
      const params = cp.params.slice();
      const back: Aggregator = new Aggregator(cfg, opt, params, cp.version, cp.snap.seq);
      back.restoreOptimizer(cp.opt);
      back.restoreSnapshot(cp.snap);
      back.refill(log.slice(cp.snap.seq - cp.snap.buffered, cp.snap.seq));
      for (const c of log.slice(cp.snap.seq)) back.admit(c);
      assert.equal(back.version, live.version);
      assert.deepEqual([...params], [...liveParams], `${rule}: replay from the checkpoint spanning ${cp.snap.buffered}`);
    }
    // And the exclusion mattered: the same log without the marks ends elsewhere.
    const unmarked = feed(cfg, cs, opt);
    assert.notDeepEqual([...unmarked.params], [...liveParams], rule);
  }
});

test('worker history: restart mid-buffer restores every worker momentum; replay is bit for bit', () => {
  const cfg = AggregationSchema.parse({ mode: 'buffered', bufferSize: 5, rule: 'centered-clip', workerMomentum: 0.9 });
  const cs = contributions(37).map((c, i) => ({ ...c, worker: `w${i % 4}` }));
  const whole = feed(cfg, cs);
  const first = feed(cfg, cs.slice(0, 22));
  const snap = first.agg.snapshot();
  assert.equal(snap.history?.length, 4);
  const params = first.params.slice();
  const back = new Aggregator(cfg, { kind: 'adam', learningRate: 0.01 }, params, first.agg.version, snap.seq);
  back.restoreOptimizer(first.agg.optimizerState());
  back.restoreSnapshot(snap);
  back.refill(cs.slice(22 - snap.buffered, 22));
  for (const c of cs.slice(22)) back.admit(c);
  assert.deepEqual([...params], [...whole.params]);
  // Without the histories the same replay lands elsewhere: the momenta matter to the step.
  const lost = first.params.slice();
  const amnesic = new Aggregator(cfg, { kind: 'adam', learningRate: 0.01 }, lost, first.agg.version, snap.seq);
  amnesic.restoreOptimizer({ ...first.agg.optimizerState(), slots: first.agg.optimizerState().slots.filter((s) => s.name !== 'aggregator.history') });
  amnesic.restoreSnapshot({ ...snap, history: undefined });
  amnesic.refill(cs.slice(22 - snap.buffered, 22));
  for (const c of cs.slice(22)) amnesic.admit(c);
  assert.notDeepEqual([...lost], [...whole.params]);
});

test('worker history: a worker repeating one direction is weighted down; honest noisy workers are not', () => {
  // The same norm as an honest gradient (clipping would bring a longer one down to about that).
  const dir = vec(() => (rnd() - 0.5) * 2);
  const weights: number[][] = [];
  const h = new Map<string, Float32Array>();
  const table = sketchTable(N);
  for (let round = 0; round < 20; round++) {
    const moms = ['h1', 'h2', 'h3', 'h4', 'h5', 'bad'].map((w) => {
      const g = w === 'bad' ? dir : vec(() => 0.05 + (rnd() - 0.5) * 2);
      const sk = countSketch(g, table);
      const m = h.get(w);
      if (m) for (let i = 0; i < sk.length; i++) m[i] = 0.9 * m[i]! + 0.1 * sk[i]!;
      else h.set(w, sk);
      return h.get(w)!.slice();
    });
    weights.push(screenWeights(moms));
  }
  const last = weights.at(-1)!;
  assert.ok(last[5]! < 0.35, `the repeating worker's weight ${last[5]}`);
  for (let j = 0; j < 5; j++) assert.ok(last[j]! > 0.6, `honest worker ${j}: ${last[j]}`);
});
