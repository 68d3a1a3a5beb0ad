// Flood: while an honest Node worker trains the MLP demo, a separate attacker process floods
// lease:request and job:get from 4 sockets (each with its own address via X-Forwarded-For, the
// coordinator trusting its loopback proxy as with FLOCK_TRUST_PROXY=1) and opens 200 connections
// in a loop from one address. The limiter trips within 1 s, the honest worker keeps >= 90% of its
// throughput, and GET /api/jobs answers with p99 < 200 ms.
//
// This machine is shared and its load drifts by +-30% within seconds (FLOOD_NOOP=1 runs the same
// test with an attacker that sends nothing). So throughput is measured against a control: a second
// coordinator with its own honest worker, never attacked, measured over the same seconds; the
// figure is (attacked / control under attack) / (attacked / control before the attack).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startCoordinator, type Coordinator } from '../coordinator.ts';
import { loadMnist, sliceDataset, type Dataset } from '../data/dataset.ts';
import { initNodeBackend } from '../../shared/training/node-backend.ts';
import { ErrorCode } from '../../shared/protocol/errors.ts';

const PHASE_MS = 7000;
const coords: Coordinator[] = [];
const dirs: string[] = [];
const children: ChildProcess[] = [];
const here = (f: string): string => fileURLToPath(new URL(f, import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function coordinator(dataset: Dataset): Promise<Coordinator> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'flock-flood-'));
  dirs.push(dataDir);
  const c = await startCoordinator({
    port: 0, host: '127.0.0.1', dataDir, clientDir: path.join(dataDir, 'none'), demo: 'mnist-mlp', store: 'memory',
    demoOverrides: { batchSize: 64, stop: { maxEpochs: 1000, targetAccuracy: null }, evalEveryVersions: 1_000_000 },
    log: { info() {}, warn() {} }, dataset,
    door: { trustProxy: { kind: 'loopback' } },
  });
  coords.push(c);
  return c;
}

let attacked: Coordinator;
let control: Coordinator;

before(async () => {
  await initNodeBackend('wasm');
  const dataset = sliceDataset(await loadMnist(), 6400, 100);
  attacked = await coordinator(dataset);
  control = await coordinator(dataset);
});

after(async () => {
  for (const p of children) p.kill('SIGTERM');
  for (const c of coords) await c.close();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const applied = (c: Coordinator): number => c.registry.all()[0]!.summary().samplesApplied;

/** Samples/s of both coordinators over the same `ms`, running `probe` in a loop meanwhile. */
async function rates(ms: number, probe: () => Promise<void>): Promise<{ attacked: number; control: number }> {
  const a0 = applied(attacked);
  const c0 = applied(control);
  const t0 = performance.now();
  while (performance.now() < t0 + ms) await probe();
  const s = (performance.now() - t0) / 1000;
  return { attacked: (applied(attacked) - a0) / s, control: (applied(control) - c0) / s };
}

test('flood from 4 sockets + 200 connections from one address: limiter trips < 1 s, honest worker >= 90%, GET /api/jobs p99 < 200 ms', { timeout: 90_000 }, async () => {
  for (const c of [attacked, control]) children.push(spawn(process.execPath, ['--import', 'tsx', here('./testing/honest-worker.ts'), c.url], { stdio: 'inherit' }));
  while (applied(attacked) < 6400 || applied(control) < 6400) await sleep(100); // warm up: model built, wasm compiled
  const get = async (into: number[]): Promise<void> => {
    const t = performance.now();
    const res = await fetch(`${attacked.url}/api/jobs`);
    await res.arrayBuffer();
    into.push(performance.now() - t);
    await sleep(25);
  };
  const quiet: number[] = [];
  const before = await rates(PHASE_MS, () => get(quiet));

  // nice 19: in the field the attacker's CPU is its own; here it may use what the coordinators leave.
  const noop = process.env.FLOOD_NOOP === '1';
  const nice = process.env.FLOOD_NICE !== '0';
  const flooder = spawn(nice ? 'nice' : process.execPath, [...(nice ? ['-n', '19', process.execPath] : []), '--import', 'tsx', here('./testing/flooder.ts'), attacked.url, String(PHASE_MS + 3000)], { stdio: ['ignore', 'pipe', 'inherit'], env: process.env });
  children.push(flooder);
  let out = '';
  flooder.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => flooder.once('exit', () => r()));

  // The attack starts when the first attacker connection is open; the limiter trips when the first RATE_LIMITED is counted.
  const rl0 = attacked.door.refusals.snapshot().totals[ErrorCode.RateLimited] ?? 0;
  let startedAt = 0;
  let trippedAt = 0;
  const watchEnd = performance.now() + (noop ? 0 : 15_000);
  while (!trippedAt && performance.now() < watchEnd) {
    if (!startedAt && [...attacked.door.connections().keys()].some((a) => a.startsWith('10.9.'))) startedAt = performance.now();
    if (startedAt && (attacked.door.refusals.snapshot().totals[ErrorCode.RateLimited] ?? 0) > rl0) trippedAt = performance.now();
    await sleep(10);
  }
  if (!noop) assert.ok(startedAt > 0 && trippedAt > 0, 'the attack started and the limiter tripped');
  await sleep(300);

  const latencies: number[] = [];
  const during = await rates(PHASE_MS, () => get(latencies));
  await exited;
  const p99of = (l: number[]): number => [...l].sort((a, b) => a - b)[Math.min(l.length - 1, Math.floor(l.length * 0.99))]!;
  const p99 = p99of(latencies);
  const attacker = JSON.parse(out.trim().split('\n').at(-1) || '{}') as { emitted: number; refused: Record<string, number>; disconnects: number; connectsOk: number; connectsRefused: number };
  const ratio = during.attacked / during.control / (before.attacked / before.control);
  console.log(`# ${noop ? 'CONTROL RUN (no attack): ' : ''}honest ${before.attacked.toFixed(0)} -> ${during.attacked.toFixed(0)} samples/s while the unattacked control went ${before.control.toFixed(0)} -> ${during.control.toFixed(0)}: kept ${(ratio * 100).toFixed(1)}%; limiter tripped ${(trippedAt - startedAt).toFixed(0)} ms after the first attacker connection; GET /api/jobs p99 ${p99.toFixed(1)} ms (${p99of(quiet).toFixed(1)} ms before) over ${latencies.length} requests; attacker ${JSON.stringify(attacker)}`);
  assert.ok(during.attacked > 0);
  if (noop) return;
  assert.ok(trippedAt - startedAt < 1000, `limiter tripped after ${(trippedAt - startedAt).toFixed(0)} ms`);
  assert.ok(ratio >= 0.9, `honest worker kept ${(ratio * 100).toFixed(1)}% of its throughput`);
  assert.ok(p99 < 200, `GET /api/jobs p99 ${p99.toFixed(1)} ms`);
  assert.ok(attacker.connectsRefused >= 150, `${attacker.connectsRefused} of the 200 connections from one address refused`);
});
