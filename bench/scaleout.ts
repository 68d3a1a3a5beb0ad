// Scale-out benchmark (not a timed test): 1, 2 and 3 coordinator processes on one private Redis
// (FLOCK_STORE=redis), the same Node workers spread over them round-robin, one MNIST MLP job.
// Measures updates/s applied by the owner, workers connected, Redis traffic (bytes/s through
// Redis: update log + relay + adapter) and the gradient size, and writes bench/results/scaleout.json.
// Usage: npm run bench:scaleout [-- --workers 6 --seconds 20 --warmup 6]

import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { initNodeBackend } from '../shared/training/node-backend.ts';
import { startRedis } from '../server/storage/testing/redis-server.ts';
import { RedisStateStore } from '../server/storage/redis-state-store.ts';
import { ADMIN_TOKEN, clusterEnv, sleep, startProcess, startWorkers } from '../server/cluster/testing/cluster-fixture.ts';

const args = process.argv.slice(2);
const arg = (name: string, dflt: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const WORKERS = arg('workers', 6);
const SECONDS = arg('seconds', 20);
const WARMUP = arg('warmup', 6);

interface Run {
  processes: number;
  workers: number;
  workersConnected: number;
  updatesPerS: number;
  samplesPerS: number;
  gradientBytes: number;
  redisBytesInPerS: number;
  redisBytesOutPerS: number;
  /** Acknowledgements the workers counted in the window (all processes). */
  ackedInWindow: number;
  /** Owners during the run (1 unless an owner stalled past its lease). */
  ownershipTerms: number;
}

async function redisNet(r: Redis): Promise<{ inB: number; outB: number }> {
  const info = await r.info('stats');
  const num = (k: string): number => Number(new RegExp(`${k}:(\\d+)`).exec(info)?.[1] ?? 0);
  return { inB: num('total_net_input_bytes'), outB: num('total_net_output_bytes') };
}

async function run(n: number): Promise<Run> {
  const redis = await startRedis();
  const env = clusterEnv(redis, { FLOCK_BATCH_SIZE: '64', FLOCK_EVAL_EVERY: '100000' });
  const procs = await Promise.all(Array.from({ length: n }, () => startProcess(env)));
  const urls = procs.map((p) => p.url);
  const workers = startWorkers(urls, WORKERS);
  const r = new Redis(redis.url);
  const store = await RedisStateStore.open(redis.url);
  try {
    await sleep(WARMUP * 1000);
    // Versions from the log's length (HLEN): reading the log itself would count in Redis's traffic.
    const hlen = async (): Promise<number> => r.hlen('flock:job:mnist-mlp:upd');
    const v0 = await hlen();
    const net0 = await redisNet(r);
    const acked0 = workers.acked.size;
    const t0 = Date.now();
    await sleep(SECONDS * 1000);
    const net1 = await redisNet(r);
    const v1 = await hlen();
    const dt = (Date.now() - t0) / 1000;
    await store.reload();
    const rows = store.updatesAfter('mnist-mlp', v0);
    const grad = rows.find((u) => u.gradient)?.gradient?.byteLength ?? 0;
    const samples = rows.reduce((s, u) => s + u.samples, 0);
    const list = (await (await fetch(`${urls[urls.length - 1]}/api/workers`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json()) as unknown[];
    return {
      processes: n,
      workers: WORKERS,
      workersConnected: Array.isArray(list) ? list.length : -1,
      updatesPerS: +((v1 - v0) / dt).toFixed(2),
      samplesPerS: +(samples / dt).toFixed(0),
      gradientBytes: grad,
      redisBytesInPerS: Math.round((net1.inB - net0.inB) / dt),
      redisBytesOutPerS: Math.round((net1.outB - net0.outB) / dt),
      ackedInWindow: workers.acked.size - acked0,
      ownershipTerms: procs.map((p) => p.logs.filter((l) => l.includes('serves the jobs')).length).reduce((a, b) => a + b, 0),
    };
  } finally {
    await workers.stop();
    store.close();
    r.disconnect();
    for (const p of procs) await p.stop('SIGTERM');
    await redis.stop();
  }
}

async function main(): Promise<void> {
  await initNodeBackend('wasm');
  const runs: Run[] = [];
  for (const n of [1, 2, 3]) {
    const res = await run(n);
    console.log(JSON.stringify(res));
    runs.push(res);
  }
  const base = runs[0]!.updatesPerS;
  const out = {
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model ?? '?' },
    settings: { workers: WORKERS, seconds: SECONDS, warmupSeconds: WARMUP, model: 'mnist-mlp', batchSize: 64, redis: 'loopback, appendonly yes, appendfsync always' },
    runs: runs.map((r) => ({ ...r, ratioTo1: base > 0 ? +(r.updatesPerS / base).toFixed(2) : null })),
    note: 'Every process, the Redis server and all workers share this machine: the ratio shows the overhead of the relay, not the capacity of separate machines.',
  };
  const dir = path.join(path.dirname(new URL(import.meta.url).pathname), 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'scaleout.json'), `${JSON.stringify(out, null, 2)}\n`);
  console.log(`wrote bench/results/scaleout.json`);
  process.exit(0);
}

void main();
