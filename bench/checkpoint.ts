// Checkpoint writes and the coordinator's event loop (not a timed test). For models of about 100k
// and 1M parameters, a job's checkpoint as JobRuntime.checkpoint() takes it (weights copied, Adam's
// m and v plus CenteredClip's centre copied, 64 workers' 1,024-float history rows) is written through
// the real CheckpointPolicy and store, back to back, while the event loop's delay is sampled
// (perf_hooks.monitorEventLoopDelay, 1 ms resolution, plus the longest gap between 1 ms timer
// ticks). Side by side in one run: packing and hashing on the event loop (`inlineEncoder`, where
// they ran before) and in the checkpoint thread (the default). File store always; the Redis store
// too when /usr/bin/redis-server exists. Each configuration runs `--rounds` times, the modes
// interleaved, and the summary takes the median over rounds (other processes on a shared machine
// stall the loop too: the idle figures, sampled between rounds, show how much). Writes
// bench/results/checkpoint.json.
// Usage: npm run bench:checkpoint [-- --sizes 100000,1000000 --writes 20 --rounds 3 --stores file,redis --dir /tmp --out checkpoint]

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { createOptimizer } from '../server/aggregation/optimizers.ts';
import { CheckpointPolicy, type CheckpointSnapshot } from '../server/storage/checkpoint-policy.ts';
import { CheckpointStore, type Checkpoints } from '../server/storage/checkpoint-store.ts';
import { RedisCheckpointStore } from '../server/storage/redis-checkpoint-store.ts';
import { inlineEncoder, ThreadedCheckpointEncoder, type CheckpointEncoder } from '../server/storage/checkpoint-encoder.ts';
import { MemoryStateStore } from '../server/storage/memory-state-store.ts';
import { redisMissing, startRedis, type RedisFixture } from '../server/storage/testing/redis-server.ts';
import type { TensorSpec } from '../shared/codec/tensor-codec.ts';

const args = process.argv.slice(2);
const arg = (name: string): string | undefined => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const SIZES = (arg('sizes') ?? '100000,1000000').split(',').map(Number);
const WRITES = Number(arg('writes') ?? 20);
const ROUNDS = Number(arg('rounds') ?? 3);
const STORES = (arg('stores') ?? (redisMissing() ? 'file' : 'file,redis')).split(',');
const DIR = arg('dir') ?? tmpdir();
const HISTORY_WORKERS = 64;
const SKETCH = 1024;

/** What JobRuntime.checkpoint() copies synchronously: the packed weights and the optimizer's slots. */
function snapshotOf(version: number, weights: Float32Array, adam: ReturnType<typeof createOptimizer>, center: Float32Array, history: Float32Array): CheckpointSnapshot {
  const st = adam.state(); // copies m and v
  return {
    version,
    weights: new Uint8Array(weights.buffer).slice(),
    optimizer: { step: st.step, slots: [...st.slots, { name: 'aggregator.center', data: center.slice() }, { name: 'aggregator.history', data: history.slice() }] },
    // About what a job's runtime snapshot holds after a few epochs: a ledger and evaluations.
    runtime: {
      aggregator: { seq: version, buffered: 0 },
      ledger: { epochs: [0, 1, 2].map((epoch) => ({ epoch, done: Array.from({ length: 940 }, (_, i) => i) })) },
      metrics: Array.from({ length: 100 }, (_, i) => ({ version: i * 5, testAccuracy: 0.9, testLoss: 0.3, at: 1_700_000_000_000 + i })),
    },
  };
}

interface Figures {
  /** monitorEventLoopDelay over the writes, ms (each sample includes the 1 ms timer period). */
  lagMaxMs: number;
  lagP99Ms: number;
  lagP999Ms: number;
  lagMeanMs: number;
  /** Longest gap between two ticks of a 1 ms interval timer, ms. */
  maxTickGapMs: number;
  /** Gaps between ticks of 20 ms or more, and 50 ms or more, per checkpoint written. */
  stalls20PerWrite: number;
  stalls50PerWrite: number;
  /** Synchronous part of each write on the event loop (snapshot copy + write() call), ms. */
  syncMsMean: number;
  syncMsMax: number;
  /** write() until the checkpoint is stored and the log compacted, ms. */
  writeMsP50: number;
  writeMsMax: number;
  writesPerSec: number;
  /** Garbage-collection pauses on the event loop's thread during the writes, ms. */
  gcMaxMs: number;
  gcTotalMs: number;
}

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? NaN;
};

async function measure(params: number, store: Checkpoints, encoder: CheckpointEncoder): Promise<Figures> {
  const weights = new Float32Array(params).map((_, i) => Math.sin(i));
  const adam = createOptimizer({ kind: 'adam', learningRate: 0.001 }, params);
  adam.apply(new Float32Array(params), new Float32Array(params).fill(0.01), 0.001);
  const center = new Float32Array(params).fill(0.5);
  const history = new Float32Array(HISTORY_WORKERS * SKETCH).fill(0.25);
  const allSpecs: TensorSpec[] = [{ name: 'dense/kernel', shape: [params], dtype: 'float32' }];
  const policy = new CheckpointPolicy(
    { jobId: 'bench', store, state: new MemoryStateStore(), now: () => Date.now(), warn: (m) => console.warn(m), modelTopology: { class_name: 'Sequential', config: { name: 'bench', layers: [] } }, allSpecs, loss: 'categoricalCrossentropy', encoder },
    null,
  );
  await policy.write(snapshotOf(0, weights, adam, center, history)); // warm: thread start, store created

  const h = monitorEventLoopDelay({ resolution: 1 });
  const ticks = tickGaps();
  const sync: number[] = [];
  const lat: number[] = [];
  const gc: number[] = [];
  const gcObserver = new PerformanceObserver((list) => gc.push(...list.getEntries().map((e) => e.duration)));
  gcObserver.observe({ entryTypes: ['gc'] });
  h.enable();
  const t0 = performance.now();
  for (let v = 1; v <= WRITES; v++) {
    const s0 = performance.now();
    const done = policy.write(snapshotOf(v, weights, adam, center, history));
    sync.push(performance.now() - s0);
    await done;
    lat.push(performance.now() - s0);
  }
  const seconds = (performance.now() - t0) / 1000;
  h.disable();
  const gaps = ticks.stop();
  gcObserver.disconnect();
  if (policy.lastVersion !== WRITES) throw new Error(`only v${policy.lastVersion} of v${WRITES} written`);
  const ms = (ns: number): number => ns / 1e6;
  return {
    lagMaxMs: ms(h.max),
    lagP99Ms: ms(h.percentile(99)),
    lagP999Ms: ms(h.percentile(99.9)),
    lagMeanMs: ms(h.mean),
    maxTickGapMs: Math.max(...gaps),
    stalls20PerWrite: gaps.filter((g) => g >= 20).length / WRITES,
    stalls50PerWrite: gaps.filter((g) => g >= 50).length / WRITES,
    syncMsMean: sync.reduce((a, b) => a + b, 0) / sync.length,
    syncMsMax: Math.max(...sync),
    writeMsP50: pct(lat, 0.5),
    writeMsMax: Math.max(...lat),
    writesPerSec: WRITES / seconds,
    gcMaxMs: Math.max(0, ...gc),
    gcTotalMs: gc.reduce((a, b) => a + b, 0),
  };
}

/** Gaps between the ticks of a 1 ms interval timer, until stop(). */
function tickGaps(): { stop(): number[] } {
  const gaps: number[] = [];
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    gaps.push(now - last);
    last = now;
  }, 1);
  return {
    stop() {
      clearInterval(timer);
      gaps.push(performance.now() - last);
      return gaps;
    },
  };
}

/** The event loop with nothing to do for `ms`, for the floor of the figures (the machine's other load). */
async function idle(ms = 2000): Promise<{ lagMaxMs: number; lagP99Ms: number; lagMeanMs: number; stalls20PerSec: number; stalls50PerSec: number }> {
  const h = monitorEventLoopDelay({ resolution: 1 });
  const ticks = tickGaps();
  h.enable();
  await new Promise((r) => setTimeout(r, ms));
  h.disable();
  const gaps = ticks.stop();
  return { lagMaxMs: h.max / 1e6, lagP99Ms: h.percentile(99) / 1e6, lagMeanMs: h.mean / 1e6, stalls20PerSec: (gaps.filter((g) => g >= 20).length * 1000) / ms, stalls50PerSec: (gaps.filter((g) => g >= 50).length * 1000) / ms };
}

/** Stops the Redis fixture; its AOF rewrite (16 MB values) can still be writing into the folder. */
async function stopRedis(r: RedisFixture): Promise<void> {
  try {
    await r.stop();
  } catch {
    await new Promise((res) => setTimeout(res, 500));
    rmSync(r.dir, { recursive: true, force: true });
  }
}

const thread = new ThreadedCheckpointEncoder();
const MODES: { name: string; note: string; encoder: CheckpointEncoder }[] = [
  { name: 'event-loop', note: 'packing and SHA-256 on the event loop (as before the checkpoint thread)', encoder: inlineEncoder },
  { name: 'thread', note: 'packing and SHA-256 in the checkpoint thread (default)', encoder: thread },
];

let redis: RedisFixture | null = null;
const runs: (Record<string, unknown> & { store: string; params: number; mode: string; round: number } & Figures)[] = [];
const idleRuns: Awaited<ReturnType<typeof idle>>[] = [];
try {
  for (const storeKind of STORES) {
    if (storeKind === 'redis') redis = await startRedis();
    for (let round = 1; round <= ROUNDS; round++) {
      idleRuns.push(await idle());
      for (const params of SIZES) {
        for (const mode of MODES) {
          const dir = mkdtempSync(path.join(DIR, 'flock-bench-ckpt-'));
          const client = redis ? new Redis(redis.url) : null;
          try {
            const store: Checkpoints = client
              ? new RedisCheckpointStore({ redis: client, prefix: `b${round}-${params}-${mode.name}`, jobId: 'bench', kind: 'rotation', keep: 3, fence: () => ({ key: 'none', token: null }), hasher: mode.encoder })
              : new CheckpointStore(dir, 3, (m) => console.warn(m), 0, mode.encoder);
            const figures = await measure(params, store, mode.encoder);
            runs.push({ store: storeKind, params, mode: mode.name, round, loadAvg1m: loadavg()[0]!, ...figures });
            console.log(`${storeKind.padEnd(5)} ${String(params).padStart(8)} params, round ${round}, ${mode.name.padEnd(10)}: lag max ${figures.lagMaxMs.toFixed(1)} ms, p99 ${figures.lagP99Ms.toFixed(1)} ms; sync part ${figures.syncMsMean.toFixed(1)} ms (max ${figures.syncMsMax.toFixed(1)}); GC max ${figures.gcMaxMs.toFixed(1)} ms; write ${figures.writeMsP50.toFixed(0)} ms p50`);
          } finally {
            client?.disconnect();
            rmSync(dir, { recursive: true, force: true });
          }
        }
      }
    }
    if (redis) await stopRedis(redis);
    redis = null;
  }
} finally {
  if (redis) await stopRedis(redis);
  await thread.close();
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const checkpointMB = (params: number): number => (params * 4 * 4 + HISTORY_WORKERS * SKETCH * 4) / 1e6;
const summary = STORES.flatMap((store) =>
  SIZES.map((params) => {
    const row: Record<string, unknown> = { store, params, checkpointMB: checkpointMB(params) };
    for (const mode of MODES) {
      const rs = runs.filter((r) => r.store === store && r.params === params && r.mode === mode.name);
      row[mode.name] = {
        lagMaxMs: median(rs.map((r) => r.lagMaxMs)),
        lagP99Ms: median(rs.map((r) => r.lagP99Ms)),
        maxTickGapMs: median(rs.map((r) => r.maxTickGapMs)),
        stalls20PerWrite: median(rs.map((r) => r.stalls20PerWrite)),
        stalls50PerWrite: median(rs.map((r) => r.stalls50PerWrite)),
        gcMaxMs: median(rs.map((r) => r.gcMaxMs)),
        writesPerSec: median(rs.map((r) => r.writesPerSec)),
        syncMsMean: median(rs.map((r) => r.syncMsMean)),
        writeMsP50: median(rs.map((r) => r.writeMsP50)),
      };
    }
    return row;
  }),
);
const idleSummary = {
  lagMaxMs: median(idleRuns.map((r) => r.lagMaxMs)),
  lagP99Ms: median(idleRuns.map((r) => r.lagP99Ms)),
  stalls20PerSec: median(idleRuns.map((r) => r.stalls20PerSec)),
  stalls50PerSec: median(idleRuns.map((r) => r.stalls50PerSec)),
};

mkdirSync('bench/results', { recursive: true });
const machine = { cpus: cpus().length, cpu: cpus()[0]?.model, memGiB: Math.round(totalmem() / 2 ** 30), node: process.version, dir: DIR };
const out = `bench/results/${arg('out') ?? 'checkpoint'}.json`;
const modes = Object.fromEntries(MODES.map((m) => [m.name, m.note]));
writeFileSync(out, JSON.stringify({ benchmark: 'checkpoint', at: new Date().toISOString(), machine, writesPerRun: WRITES, rounds: ROUNDS, historyWorkers: HISTORY_WORKERS, modes, idleEventLoop: { median: idleSummary, runs: idleRuns }, summary, runs }, null, 2) + '\n');
console.log('\nmedian over rounds: lag max / p99 (ms), stalls of 20+ ms per write, synchronous part of a write (ms):');
for (const r of summary) {
  const f = (m: string): string => {
    const x = r[m] as { lagMaxMs: number; lagP99Ms: number; stalls20PerWrite: number; syncMsMean: number };
    return `${m} ${x.lagMaxMs.toFixed(1)} / ${x.lagP99Ms.toFixed(1)}, ${x.stalls20PerWrite.toFixed(2)}, sync ${x.syncMsMean.toFixed(1)}`;
  };
  console.log(`${String(r.store).padEnd(5)} ${String(r.params).padStart(8)} params (${(r.checkpointMB as number).toFixed(1)} MB): ${MODES.map((m) => f(m.name)).join('   ')}`);
}
console.log(`idle event loop: lag max ${idleSummary.lagMaxMs.toFixed(1)} / p99 ${idleSummary.lagP99Ms.toFixed(1)} ms, ${idleSummary.stalls20PerSec.toFixed(2)} stalls of 20+ ms per second; wrote ${out}`);
