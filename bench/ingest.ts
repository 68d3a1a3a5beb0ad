// Coordinator ingest benchmark (not a timed test). For models of about 100k, 1M and 10M parameters
// a coordinator child process (bench/lib/sized-coordinator.ts, SQLite state as in production) serves
// 1, 16 and 64 simulated workers on loopback, each looping lease:request -> gradient:push of a valid
// all-zero float32 gradient. Measured side by side in the same run: the in-process bound, a plain
// JS Adam step over the same number of floats (what the coordinator would do with no transport,
// validation or log). Writes bench/results/ingest.json.
// Usage: npm run bench:ingest [-- --seconds 6 --sizes 100000,1000000 --clients 1,16 --out ingest]
// (WS_NO_BUFFER_UTIL=1 turns off ws's native masking, bufferutil, in both processes: the A/B for it.)

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import { io, type Socket } from 'socket.io-client';
import { createOptimizer } from '../server/aggregation/optimizers.ts';
import { PROTOCOL_VERSION, type LeaseAck, type PushAck } from '../shared/protocol/messages.ts';
import type { TensorSpec } from '../shared/codec/tensor-codec.ts';

const args = process.argv.slice(2);
const arg = (name: string): string | undefined => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const SECONDS = Number(arg('seconds') ?? 6);
const SIZES = (arg('sizes') ?? '100000,1000000,10000000').split(',').map(Number);
const CLIENTS = (arg('clients') ?? '1,16,64').split(',').map(Number);
/** Above this many floats x clients the leases' weights alone would need GBs in flight: skipped, said so. */
const MAX_FLOATS_IN_FLIGHT = 100_000_000;

function boundStepsPerSec(n: number, ms = 1500): number {
  const opt = createOptimizer({ kind: 'adam', learningRate: 0.001 }, n);
  const params = new Float32Array(n);
  const grad = new Float32Array(n).fill(0.001);
  opt.apply(params, grad, 0.001);
  const t0 = performance.now();
  let steps = 0;
  while (performance.now() - t0 < ms) {
    opt.apply(params, grad, 0.001);
    steps++;
  }
  return (steps * 1000) / (performance.now() - t0);
}

async function startServer(params: number, dataDir: string): Promise<{ proc: ChildProcess; url: string; token: string; params: number }> {
  const proc = spawn(process.execPath, [...(process.env.BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_CPU_PROF] : []), '--import', 'tsx', 'bench/lib/sized-coordinator.ts', String(params), dataDir], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    proc.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      const m = /READY (\S+) (\S+) (\d+)/.exec(out);
      if (m) resolve({ proc, url: m[1]!, token: m[2]!, params: Number(m[3]) });
    });
    proc.once('exit', (code) => reject(new Error(`coordinator exited ${code}`)));
  });
}

const pct = (xs: number[], p: number): number => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
};

async function client(url: string, i: number, until: number, out: { applied: number; refused: number; latencies: number[]; bytesDown: number }): Promise<Socket> {
  const socket = io(url, { transports: ['websocket'], forceNew: true });
  const hello = await socket.timeout(30_000).emitWithAck('worker:hello', { protocol: PROTOCOL_VERSION, workerId: `ingest-${i}-${Math.random().toString(36).slice(2, 8)}`, capabilities: { backend: 'cpu', runtime: 'node' } });
  if (!hello.ok) throw new Error(hello.message);
  let cached: number | null = null;
  let zeros: Buffer | null = null;
  let specs: TensorSpec[] = [];
  void (async () => {
    while (Date.now() < until) {
      const lease = (await socket.timeout(60_000).emitWithAck('lease:request', { jobId: 'mnist-mlp', cachedVersion: cached })) as LeaseAck;
      if (!lease.ok) {
        await new Promise((r) => setTimeout(r, 5));
        continue;
      }
      if (lease.weights) {
        cached = lease.weights.version;
        out.bytesDown += (lease.weights.data as Buffer).byteLength;
        if (!zeros) {
          specs = lease.weights.specs.slice(0, 4) as TensorSpec[];
          const n = specs.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
          zeros = Buffer.alloc(n * 4);
        }
      }
      const t0 = performance.now();
      const ack = (await socket.timeout(60_000).emitWithAck('gradient:push', { leaseId: lease.lease.leaseId, baseVersion: lease.lease.baseVersion, numSamples: lease.lease.numSamples, loss: 0, computeMs: 0, specs, data: zeros! })) as PushAck;
      out.latencies.push(performance.now() - t0);
      if (ack.ok) out.applied++;
      else out.refused++;
    }
  })().catch(() => undefined); // the socket is closed at the end of the run, mid-request
  return socket;
}

const results: Record<string, unknown>[] = [];
for (const size of SIZES) {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'flock-ingest-'));
  const server = await startServer(size, dataDir);
  const n = server.params;
  const bound = boundStepsPerSec(n);
  console.log(`${n} parameters: in-process Adam bound ${bound.toFixed(0)} steps/s`);
  try {
    for (const clients of CLIENTS) {
      if (n * clients > MAX_FLOATS_IN_FLIGHT) {
        results.push({ params: n, clients, skipped: `${clients} clients x ${(n * 4 / 1e6).toFixed(0)} MB of weights per lease would need ${((n * clients * 4) / 1e9).toFixed(1)} GB in flight` });
        console.log(`  ${clients} clients: skipped`);
        continue;
      }
      const stats = { applied: 0, refused: 0, latencies: [] as number[], bytesDown: 0 };
      const t0 = Date.now();
      const until = t0 + SECONDS * 1000;
      // A client the coordinator does not answer (refused at the door, a hello timeout) is counted,
      // not fatal: the run goes on with the others and the row says how many connected.
      const settled = await Promise.allSettled(Array.from({ length: clients }, (_, i) => client(server.url, i, until, stats)));
      const sockets = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
      const failedClients = settled.length - sockets.length;
      if (failedClients > 0) console.log(`  ${failedClients} of ${clients} clients could not start: ${(settled.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason}`);
      while (Date.now() < until + 200) await new Promise((r) => setTimeout(r, 100));
      const metrics = await (await fetch(`${server.url}/metrics`, { headers: { Authorization: `Bearer ${server.token}` } })).text();
      const lagP99 = Number(/^nodejs_eventloop_lag_p99_seconds ([\d.e+-]+)$/m.exec(metrics)?.[1] ?? NaN) * 1000;
      const elapsed = (Date.now() - t0) / 1000;
      for (const s of sockets) s.close();
      const updatesPerSec = stats.applied / elapsed;
      const r = {
        params: n,
        clients,
        failedClients,
        seconds: elapsed,
        updatesApplied: stats.applied,
        refused: stats.refused,
        updatesPerSec,
        gradientMBPerSec: (updatesPerSec * n * 4) / 1e6,
        ackP50Ms: pct(stats.latencies, 0.5),
        ackP99Ms: pct(stats.latencies, 0.99),
        weightsMBPerSecDown: stats.bytesDown / elapsed / 1e6,
        boundStepsPerSec: bound,
        fractionOfBound: updatesPerSec / bound,
        coordinatorEventLoopLagP99Ms: lagP99,
      };
      results.push(r);
      console.log(`  ${clients} clients: ${updatesPerSec.toFixed(0)} updates/s (${r.gradientMBPerSec.toFixed(0)} MB/s), ack p50 ${r.ackP50Ms.toFixed(1)} ms p99 ${r.ackP99Ms.toFixed(1)} ms, ${(r.fractionOfBound).toFixed(2)} of bound`);
      await new Promise((r2) => setTimeout(r2, 500));
    }
  } finally {
    server.proc.kill('SIGTERM');
    await new Promise((r) => server.proc.once('exit', r));
    rmSync(dataDir, { recursive: true, force: true });
  }
}

mkdirSync('bench/results', { recursive: true });
const machine = { cpus: cpus().length, cpu: cpus()[0]?.model, memGiB: Math.round(totalmem() / 2 ** 30), node: process.version };
writeFileSync(`bench/results/${arg('out') ?? 'ingest'}.json`, JSON.stringify({ benchmark: 'ingest', at: new Date().toISOString(), machine: { ...machine, bufferutil: !process.env.WS_NO_BUFFER_UTIL }, secondsPerRun: SECONDS, runs: results }, null, 2) + '\n');
console.log('\n| params | clients | updates/s | gradient MB/s | ack p50 ms | ack p99 ms | in-process bound steps/s | fraction of bound | loop lag p99 ms |');
console.log('|---|---|---|---|---|---|---|---|---|');
for (const r of results) {
  if ('skipped' in r) {
    console.log(`| ${r.params} | ${r.clients} | skipped: ${r.skipped} |`);
    continue;
  }
  const f = (x: unknown, d = 0): string => (typeof x === 'number' ? x.toFixed(d) : '–');
  console.log(`| ${r.params} | ${r.clients} | ${f(r.updatesPerSec)} | ${f(r.gradientMBPerSec)} | ${f(r.ackP50Ms, 1)} | ${f(r.ackP99Ms, 1)} | ${f(r.boundStepsPerSec)} | ${f(r.fractionOfBound, 2)} | ${f(r.coordinatorEventLoopLagP99Ms, 1)} |`);
}
process.exit(0);
