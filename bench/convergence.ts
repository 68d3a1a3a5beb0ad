// Convergence benchmark (not a test): samples, update messages, bytes and wall time to a target
// MNIST test accuracy (default 97%) for 1, 2, 4 and 8 simulated workers per aggregation mode,
// against sequential training (one worker, one gradient a step) with the same seed. The real
// JobRuntime (lease ledger, Aggregator, evaluator) in one process; N simulated workers each keep
// their own tfjs model at the version they leased, all lease, then push one after another in
// round-robin, so the k-th push of a round is k-1 pushes stale (as N equally fast workers are).
// Every run starts from the same initial weights and the same shard order (seed 42).
// With --seeds 1,2,3 every row runs once per seed (its own initial weights and shard order, the
// sequential baseline too); each run is compared with that seed's sequential run, and the summary
// gives the median ratio over seeds (one run's 97% crossing moves by 10-20% between seeds).
// Writes bench/results/convergence.json. Usage: npm run bench:convergence [-- --target 0.97 --workers 1,2,4,8 --max-epochs 12 --seeds 42]

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { initNodeBackend } from '../shared/training/node-backend.ts';
import { buildModel, packWeights, setWeightsFromPacked } from '../shared/training/model.ts';
import { computeGradients } from '../shared/training/gradient-step.ts';
import { computeLocalUpdate } from '../shared/training/local-steps.ts';
import { toBytes } from '../shared/codec/tensor-codec.ts';
import { systemClock } from '../shared/clock.ts';
import { loadMnist } from '../server/data/dataset.ts';
import { memoryJobData } from '../server/data/job-data.ts';
import { MemoryStateStore } from '../server/storage/memory-state-store.ts';
import { CheckpointStore } from '../server/storage/checkpoint-store.ts';
import { JobRuntime } from '../server/jobs/job-runtime.ts';
import { demoConfig } from '../server/jobs/demos.ts';
import { aggregationFor, describeAggregation, type AggregationConfig } from '../server/aggregation/aggregation-config.ts';
import type { WorkerId } from '../server/leases/lease-manager.ts';
import type { StalenessPolicy } from '../server/aggregation/staleness.ts';
import type { OptimizerConfig } from '../server/aggregation/optimizers.ts';
import type { tf } from '../shared/training/tf.ts';
import type { LeasePayload } from '../shared/protocol/messages.ts';

const args = process.argv.slice(2);
const arg = (name: string): string | undefined => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const TARGET = Number(arg('target') ?? 0.97);
const WORKERS = (arg('workers') ?? '1,2,4,8').split(',').map(Number);
const MAX_EPOCHS = Number(arg('max-epochs') ?? 12);
/** Samples between evaluations (the measurement's resolution). */
const EVAL_EVERY_SAMPLES = Number(arg('eval-every') ?? 6_400);
const SEEDS = (arg('seeds') ?? '42').split(',').map(Number);
const MODES: { name: string; aggregation: AggregationConfig; staleness?: StalenessPolicy; optimizer?: OptimizerConfig }[] = [
  { name: 'async', aggregation: aggregationFor({ mode: 'async' }) },
  { name: 'async-no-lookahead', aggregation: aggregationFor({ mode: 'async', lookahead: false }) },
  { name: 'buffered-mean', aggregation: aggregationFor({ mode: 'buffered', rule: 'mean' }) },
  { name: 'buffered-default', aggregation: aggregationFor({ mode: 'buffered' }) },
  { name: 'local', aggregation: aggregationFor({ mode: 'local' }) },
  // --custom '[{"name":"b4-lr2","aggregation":{"mode":"buffered","bufferSize":4,"learningRateScale":2}}]': extra rows (tuning).
  // An entry may also set the job's `staleness` policy ({ "rule": "constant", "maxStaleness": 32 })
  // and its `optimizer` ({ "kind": "adam", "learningRate": 0.003, "beta1": 0.9 }).
  ...(JSON.parse(arg('custom') ?? '[]') as { name: string; aggregation: Record<string, unknown> & { mode: 'async' | 'buffered' | 'local' }; staleness?: StalenessPolicy; optimizer?: OptimizerConfig }[]).map((c) => ({ name: c.name, aggregation: aggregationFor(c.aggregation), ...(c.staleness ? { staleness: c.staleness } : {}), ...(c.optimizer ? { optimizer: c.optimizer } : {}) })),
].filter((m) => !arg('modes') || arg('modes')!.split(',').includes(m.name));

interface Result {
  mode: string;
  seed: number;
  aggregation: string;
  workers: number;
  reached: boolean;
  accuracy: number;
  samples: number;
  /** Gradient (or pseudo-gradient) messages pushed. */
  updates: number;
  /** Optimizer steps (model versions). */
  versions: number;
  bytesDown: number;
  bytesUp: number;
  wallS: number;
}

/** The same initial weights for every run of a seed (tfjs initializers are not seeded: drawn once per seed). */
const initialWeights = new Map<number, Float32Array>();

async function runOne(mode: (typeof MODES)[number], n: number, seed: number): Promise<Result> {
  const dir = mkdtempSync(path.join(tmpdir(), 'flock-conv-'));
  const config = demoConfig('mnist-mlp', { aggregation: mode.aggregation, ...(mode.staleness ? { staleness: mode.staleness } : {}), ...(mode.optimizer ? { optimizer: mode.optimizer } : {}), stop: { maxEpochs: MAX_EPOCHS, targetAccuracy: null }, evalEveryVersions: 1_000_000, seed });
  const rt = await JobRuntime.create('conv', config, {
    clock: systemClock,
    data: memoryJobData(await loadMnist()),
    store: new CheckpointStore(dir, 2, () => {}),
    state: new MemoryStateStore(),
    log: { info() {}, warn() {} },
    newId: () => randomUUID(),
    initialWeights: initialWeights.get(seed) ?? (await drawInitialWeights(seed)),
  });
  const desc = rt.descriptor();
  const workers = await Promise.all(Array.from({ length: n }, async (_, i) => ({ id: `w${i}` as WorkerId, model: await buildModel(config.modelTopology), cached: null as number | null, lease: null as LeasePayload | null })));
  const t0 = Date.now();
  let nextEval = EVAL_EVERY_SAMPLES;
  let accuracy = 0;
  let reached = false;
  try {
    while (rt.status === 'running' && !reached) {
      for (const w of workers) {
        if (w.lease) continue;
        const ack = rt.requestLease(w.id, w.cached);
        if (!ack.ok) continue;
        if (ack.weights) {
          setWeightsFromPacked(w.model, ack.weights.specs, ack.weights.data);
          w.cached = ack.weights.version;
        }
        w.lease = ack.lease;
      }
      if (workers.every((w) => !w.lease)) {
        // No work to hand out: the last epoch is done (or the job is finishing). Let its final
        // evaluation run; without a lease nothing else will change.
        await rt.settle();
        await rt.evaluateNow();
        accuracy = rt.metricHistory().evaluations.at(-1)?.testAccuracy ?? 0;
        reached = accuracy >= TARGET;
        break;
      }
      for (const w of workers) {
        const l = w.lease;
        if (!l) continue;
        w.lease = null;
        const batch = { x: toBytes(l.x), y: toBytes(l.y), numSamples: l.numSamples };
        const g = await (l.local ? computeLocalUpdate(w.model as tf.LayersModel, desc, batch, l.local) : computeGradients(w.model, desc, batch));
        await rt.push(w.id, { leaseId: l.leaseId, baseVersion: l.baseVersion, numSamples: l.numSamples, loss: g.loss, computeMs: 1, specs: desc.trainableSpecs, data: g.gradients.buffer as ArrayBuffer });
        if (rt.summary().samplesApplied >= nextEval) break;
      }
      if (rt.summary().samplesApplied >= nextEval || rt.status !== 'running') {
        nextEval += EVAL_EVERY_SAMPLES;
        await rt.settle();
        await rt.evaluateNow();
        accuracy = rt.metricHistory().evaluations.at(-1)?.testAccuracy ?? 0;
        reached = accuracy >= TARGET;
      }
    }
    const s = rt.summary();
    return {
      mode: mode.name,
      seed,
      aggregation: describeAggregation(mode.aggregation),
      workers: n,
      reached,
      accuracy,
      samples: s.samplesApplied,
      updates: s.updates.applied,
      versions: s.version,
      bytesDown: s.bytes.down,
      bytesUp: s.bytes.up,
      wallS: (Date.now() - t0) / 1000,
    };
  } finally {
    for (const w of workers) w.model.dispose();
    await rt.settle();
    rt.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function drawInitialWeights(seed: number): Promise<Float32Array> {
  const model = await buildModel(demoConfig('mnist-mlp').modelTopology);
  const w = (await packWeights(model)).data.slice();
  model.dispose();
  initialWeights.set(seed, w);
  return w;
}

await initNodeBackend('wasm');
const results: Result[] = [];
const sequential = new Map<number, Result>();
const asyncMode = MODES.find((m) => m.name === 'async') ?? { name: 'async', aggregation: aggregationFor({ mode: 'async' }) };
for (const seed of SEEDS) {
  const r = await runOne(asyncMode, 1, seed);
  r.mode = 'sequential';
  sequential.set(seed, r);
  console.log(JSON.stringify(r));
}
const rel = (r: Result) => {
  const seq = sequential.get(r.seed)!;
  return { ...r, samplesVsSequential: +(r.samples / seq.samples).toFixed(3), updatesVsSequential: +(r.updates / seq.updates).toFixed(3) };
};
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
/** Per mode and worker count: the median over seeds of samples and ratios (runs that missed the target count as missing it). */
function summary(): { mode: string; workers: number; seeds: number; reached: number; samplesMedian: number; samplesVsSequentialMedian: number; samplesVsSequential: number[]; updatesMedian: number; updatesVsSequentialMedian: number }[] {
  const keys = [...new Set(results.map((r) => `${r.mode}|${r.workers}`))];
  return keys.map((k) => {
    const rs = results.filter((r) => `${r.mode}|${r.workers}` === k).map(rel);
    return {
      mode: rs[0]!.mode,
      workers: rs[0]!.workers,
      seeds: rs.length,
      reached: rs.filter((r) => r.reached).length,
      samplesMedian: median(rs.map((r) => r.samples)),
      samplesVsSequentialMedian: +median(rs.map((r) => r.samplesVsSequential)).toFixed(3),
      samplesVsSequential: rs.map((r) => r.samplesVsSequential),
      updatesMedian: median(rs.map((r) => r.updates)),
      updatesVsSequentialMedian: +median(rs.map((r) => r.updatesVsSequential)).toFixed(3),
    };
  });
}
/** Written after every run, so an interrupted benchmark keeps what it measured. */
function save(): void {
  const seqs = [...sequential.values()];
  const out = {
    target: TARGET,
    evalEverySamples: EVAL_EVERY_SAMPLES,
    maxEpochs: MAX_EPOCHS,
    seeds: SEEDS,
    model: 'mnist-mlp (784-128-10), Adam 0.003, batch 128; per seed the same initial weights and shard order in every run',
    note: 'samples/updates/bytes are counted at the first evaluation at or above the target (evaluations every evalEverySamples); reached=false: the budget ran out first. Sequential = one worker, async (one gradient, one step). Ratios are against the same seed\'s sequential run; summary = medians over seeds.',
    sequential: seqs.length === 1 ? seqs[0] : seqs,
    summary: summary(),
    runs: results.map(rel),
  };
  mkdirSync(path.join('bench', 'results'), { recursive: true });
  writeFileSync(path.join('bench', 'results', `${arg('out') ?? 'convergence'}.json`), JSON.stringify(out, null, 2) + '\n');
}
for (const m of MODES) {
  for (const n of WORKERS) {
    for (const seed of SEEDS) {
      const r = await runOne(m, n, seed);
      results.push(r);
      console.log(JSON.stringify(r));
      save();
    }
  }
}
console.log('\nmode              workers  seed  reached  acc     samples  x seq  updates  x seq  MB down  MB up   wall s');
for (const r of [...sequential.values(), ...results].map(rel)) {
  console.log(
    `${r.mode.padEnd(18)}${String(r.workers).padStart(7)}  ${String(r.seed).padStart(4)}  ${String(r.reached).padEnd(7)}  ${(r.accuracy * 100).toFixed(2)}  ${String(r.samples).padStart(7)}  ${r.samplesVsSequential.toFixed(2).padStart(5)}  ${String(r.updates).padStart(7)}  ${r.updatesVsSequential.toFixed(2).padStart(5)}  ${(r.bytesDown / 1e6).toFixed(1).padStart(7)}  ${(r.bytesUp / 1e6).toFixed(1).padStart(5)}  ${r.wallS.toFixed(1).padStart(6)}`,
  );
}
if (SEEDS.length > 1) {
  console.log('\nmedian over seeds: mode, workers, samples x sequential (per seed)');
  for (const s of summary()) console.log(`${s.mode.padEnd(18)}${String(s.workers).padStart(7)}  ${s.samplesVsSequentialMedian.toFixed(2)}  (${s.samplesVsSequential.map((x) => x.toFixed(2)).join(', ')}; ${s.reached}/${s.seeds} reached)`);
}
