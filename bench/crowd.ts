// 1,000 connected workers (not a timed test): a coordinator child process (MNIST MLP sized model,
// SQLite state) with N registered Node socket.io workers, most idle (hello + job:get, then only
// socket.io pings) and some working (lease -> simulated compute -> push of a valid zero gradient),
// plus one dashboard connection watching the job. Measured from the coordinator's own /metrics:
// event-loop lag p99 under the load, resident memory per idle worker (before/after connecting them);
// and whether the dashboard kept receiving live deltas. Writes bench/results/crowd.json.
// Usage: npm run bench:crowd [-- --workers 1000 --working 32 --seconds 20 --compute-ms 50 --out crowd]

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import { io, type Socket } from 'socket.io-client';
import { PROTOCOL_VERSION, type LeaseAck, type PushAck } from '../shared/protocol/messages.ts';
import type { TensorSpec } from '../shared/codec/tensor-codec.ts';

const args = process.argv.slice(2);
const arg = (name: string): string | undefined => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const WORKERS = Number(arg('workers') ?? 1000);
const WORKING = Number(arg('working') ?? 32);
const SECONDS = Number(arg('seconds') ?? 20);
const COMPUTE_MS = Number(arg('compute-ms') ?? 50);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function startServer(dataDir: string): Promise<{ proc: ChildProcess; url: string; token: string }> {
  const proc = spawn(process.execPath, [...(process.env.BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_CPU_PROF] : []), '--import', 'tsx', 'bench/lib/sized-coordinator.ts', '101770', dataDir], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    proc.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      const m = /READY (\S+) (\S+)/.exec(out);
      if (m) resolve({ proc, url: m[1]!, token: m[2]! });
    });
    proc.once('exit', (code) => reject(new Error(`coordinator exited ${code}`)));
  });
}

interface Scrape { rssBytes: number; heapBytes: number; lagP99Ms: number; lagMaxMs: number; workers: number; connections: number }
async function scrape(url: string, token: string): Promise<Scrape> {
  const text = await (await fetch(`${url}/metrics`, { headers: { Authorization: `Bearer ${token}` } })).text();
  const num = (name: string): number => Number(new RegExp(`^${name} ([\\d.e+-]+)$`, 'm').exec(text)?.[1] ?? NaN);
  const workers = [...text.matchAll(/^flock_workers\{[^}]*\} (\d+)$/gm)].reduce((s, m) => s + Number(m[1]), 0);
  return {
    rssBytes: num('process_resident_memory_bytes'),
    heapBytes: num('nodejs_heap_size_used_bytes'),
    lagP99Ms: num('nodejs_eventloop_lag_p99_seconds') * 1000,
    lagMaxMs: num('nodejs_eventloop_lag_max_seconds') * 1000,
    workers,
    connections: num('flock_connections'),
  };
}

async function worker(url: string, i: number): Promise<Socket> {
  const socket = io(url, { transports: ['websocket'], forceNew: true, reconnection: false });
  const hello = await socket.timeout(60_000).emitWithAck('worker:hello', { protocol: PROTOCOL_VERSION, workerId: `crowd-${i}-${Math.random().toString(36).slice(2, 8)}`, capabilities: { backend: i % 3 === 0 ? 'webgpu' : 'wasm', runtime: 'browser' } });
  if (!hello.ok) throw new Error(hello.message);
  const job = await socket.timeout(60_000).emitWithAck('job:get', { jobId: 'mnist-mlp' });
  if (!job.ok) throw new Error(job.message);
  return socket;
}

function work(socket: Socket, until: number, stats: { applied: number; latencies: number[] }): Promise<void> {
  return (async () => {
    let cached: number | null = null;
    let specs: TensorSpec[] = [];
    let zeros: Buffer | null = null;
    while (Date.now() < until) {
      const lease = (await socket.timeout(60_000).emitWithAck('lease:request', { jobId: 'mnist-mlp', cachedVersion: cached })) as LeaseAck;
      if (!lease.ok) {
        await sleep(20);
        continue;
      }
      if (lease.weights) {
        cached = lease.weights.version;
        if (!zeros) {
          specs = lease.weights.specs.slice(0, 4) as TensorSpec[];
          zeros = Buffer.alloc(specs.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0) * 4);
        }
      }
      await sleep(COMPUTE_MS);
      const t0 = performance.now();
      const ack = (await socket.timeout(60_000).emitWithAck('gradient:push', { leaseId: lease.lease.leaseId, baseVersion: lease.lease.baseVersion, numSamples: lease.lease.numSamples, loss: 0, computeMs: COMPUTE_MS, specs, data: zeros! })) as PushAck;
      stats.latencies.push(performance.now() - t0);
      if (ack.ok) stats.applied++;
    }
  })().catch(() => undefined);
}

const dataDir = mkdtempSync(path.join(tmpdir(), 'flock-crowd-'));
const server = await startServer(dataDir);
const sockets: Socket[] = [];
let result: Record<string, unknown>;
try {
  await sleep(1000);
  const before = await scrape(server.url, server.token);
  const tConnect = Date.now();
  for (let i = 0; i < WORKERS; i += 50) sockets.push(...(await Promise.all(Array.from({ length: Math.min(50, WORKERS - i) }, (_, j) => worker(server.url, i + j)))));
  const connectS = (Date.now() - tConnect) / 1000;
  await sleep(2000);
  (globalThis as { gc?: () => void }).gc?.();
  const idle = await scrape(server.url, server.token);

  // The dashboard: admin namespace, watch the job, count live deltas during the working phase.
  const admin = io(`${server.url}/admin`, { transports: ['websocket'], auth: { token: server.token }, forceNew: true });
  const watch = await admin.timeout(30_000).emitWithAck('job:watch', { jobId: 'mnist-mlp' });
  if (!(watch as { ok: boolean }).ok) throw new Error('dashboard watch refused');
  const deltaTimes: number[] = [];
  admin.on('job:delta', () => deltaTimes.push(Date.now()));

  await scrape(server.url, server.token); // resets the lag histogram: what follows is the loaded phase
  const stats = { applied: 0, latencies: [] as number[] };
  const t0 = Date.now();
  const until = t0 + SECONDS * 1000;
  const apiLatencies: number[] = [];
  const apiProbe = (async () => {
    while (Date.now() < until) {
      const a = performance.now();
      await (await fetch(`${server.url}/api/jobs`)).json();
      apiLatencies.push(performance.now() - a);
      await sleep(500);
    }
  })();
  await Promise.all([...sockets.slice(0, WORKING).map((s) => work(s, until, stats)), apiProbe]);
  const loaded = await scrape(server.url, server.token);
  const elapsed = (Date.now() - t0) / 1000;
  admin.close();
  const gaps = deltaTimes.slice(1).map((t, i) => t - deltaTimes[i]!);
  const sorted = [...stats.latencies].sort((a, b) => a - b);
  const q = (xs: number[], p: number): number => xs[Math.min(xs.length - 1, Math.floor(p * xs.length))] ?? NaN;
  result = {
    workers: WORKERS,
    working: WORKING,
    idle: WORKERS - WORKING,
    computeMs: COMPUTE_MS,
    seconds: elapsed,
    connectSeconds: connectS,
    registeredSeenByCoordinator: idle.workers,
    eventLoopLagP99Ms: loaded.lagP99Ms,
    eventLoopLagMaxMs: loaded.lagMaxMs,
    lagGoalMet: loaded.lagP99Ms < 50,
    rssBeforeMB: before.rssBytes / 1e6,
    rssWithWorkersMB: idle.rssBytes / 1e6,
    memoryPerIdleWorkerKB: (idle.rssBytes - before.rssBytes) / WORKERS / 1e3,
    heapPerIdleWorkerKB: (idle.heapBytes - before.heapBytes) / WORKERS / 1e3,
    updatesApplied: stats.applied,
    updatesPerSec: stats.applied / elapsed,
    pushAckP50Ms: q(sorted, 0.5),
    pushAckP99Ms: q(sorted, 0.99),
    dashboardDeltas: deltaTimes.length,
    dashboardMaxGapMs: gaps.length ? Math.max(...gaps) : null,
    dashboardLive: deltaTimes.length > 0 && (gaps.length === 0 || Math.max(...gaps) < 2000),
    apiJobsP99Ms: q([...apiLatencies].sort((a, b) => a - b), 0.99),
  };
} finally {
  for (const s of sockets) s.close();
  server.proc.kill('SIGTERM');
  await new Promise((r) => server.proc.once('exit', r));
  rmSync(dataDir, { recursive: true, force: true });
}
console.log(JSON.stringify(result, null, 2));
mkdirSync('bench/results', { recursive: true });
const machine = { cpus: cpus().length, cpu: cpus()[0]?.model, memGiB: Math.round(totalmem() / 2 ** 30), node: process.version };
writeFileSync(`bench/results/${arg('out') ?? 'crowd'}.json`, JSON.stringify({ benchmark: 'crowd', at: new Date().toISOString(), machine, ...result }, null, 2) + '\n');
process.exit(0);
