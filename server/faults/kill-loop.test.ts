// Fault injection, coordinator crashes: the real coordinator process is killed with SIGKILL at
// random moments (checkpoint writes widened so some kills land mid-write) while 3 Node workers
// train, once per aggregation mode: the default (robust buffered) 20 times (FLOCK_KILLS), plain
// async and local fewer times (FLOCK_KILLS_OTHER, default 4). The workers keep their own log of
// every acknowledged gradient. Asserts after every restart that the version never went back past
// an acknowledged one, and at the end (from the SQLite log) that every acknowledged gradient was
// logged exactly once, for the step its ack named, each step combining exactly bufferSize of them.
// Finally the newest checkpoint is zero-filled: detected, an older one plus the log replayed to the
// same weights, bit for bit.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, writeFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { io } from 'socket.io-client';
import { startCoordinatorProcess, type CoordinatorProcess } from '../../e2e/coordinator-process.ts';
import { SocketLink, type FlockSocket } from '../../shared/training/link.ts';
import { WorkerLoop } from '../../shared/training/worker-loop.ts';
import { initNodeBackend } from '../../shared/training/node-backend.ts';
import { systemClock } from '../../shared/clock.ts';
import { mulberry32 } from '../data/sharder.ts';
import { readFileSync } from 'node:fs';
import { sleep } from './fixtures.ts';

const KILLS = Number(process.env.FLOCK_KILLS ?? 20);
const KILLS_OTHER = Number(process.env.FLOCK_KILLS_OTHER ?? 4);

interface JobJson {
  version: number;
  aggregation: { mode: string; bufferSize: number; buffered: number };
}

// The default mode (the demo's robust buffered rule) takes the full count; the others fewer.
const MODES: { name: string; env: string | null; kills: number; evalEvery: string }[] = [
  { name: 'default (buffered, centered-clip)', env: null, kills: KILLS, evalEvery: '5' },
  { name: 'async', env: 'async', kills: KILLS_OTHER, evalEvery: '25' },
  { name: 'local', env: 'local', kills: KILLS_OTHER, evalEvery: '1' },
];

for (const mode of MODES) {
  if (mode.kills > 0) test(`coordinator SIGKILL x${mode.kills}, ${mode.name}: no acknowledged gradient lost or applied twice, replay bit-exact`, { timeout: 600_000 }, () => killLoop(mode.env, mode.kills, mode.evalEvery));
}

async function killLoop(aggregation: string | null, KILLS: number, evalEvery: string): Promise<void> {
  await initNodeBackend('wasm');
  const dataDir = mkdtempSync(path.join(tmpdir(), 'flock-kill-'));
  const env = {
    FLOCK_DATA_DIR: dataDir,
    FLOCK_DEMO: 'mnist-mlp',
    FLOCK_BATCH_SIZE: aggregation === 'local' ? '16' : '64',
    FLOCK_EVAL_EVERY: evalEvery,
    FLOCK_MAX_EPOCHS: '100',
    FLOCK_LEASE_TIMEOUT_MS: '3000',
    // The write's temp directory lives this long before its rename: long enough that an aimed kill
    // lands in it although the three workers computing in this process delay the polling (at 150 ms
    // half the aimed kills in \`local\` mode landed after the rename, and in one CI run none did).
    FLOCK_FAULT_CHECKPOINT_PAUSE_MS: '500',
    ...(aggregation ? { FLOCK_AGGREGATION: aggregation } : {}),
  };
  let coord: CoordinatorProcess = await startCoordinatorProcess(env);
  const port = coord.port;
  const acked = new Map<string, number>();
  let maxAcked = 0;
  const sockets: FlockSocket[] = [];
  const loops: WorkerLoop[] = [];
  for (let i = 0; i < 3; i++) {
    const socket: FlockSocket = io(coord.url, { transports: ['websocket'], reconnectionDelay: 100, reconnectionDelayMax: 500 });
    const link = new SocketLink(socket, 5000);
    const push = link.pushGradient.bind(link);
    // The workers' own record of what the coordinator acknowledged.
    link.pushGradient = async (req) => {
      const ack = await push(req);
      if (ack.ok) {
        const prior = acked.get(req.leaseId);
        assert.ok(prior === undefined || prior === ack.version, `lease ${req.leaseId} acked at v${prior} and v${ack.version}`);
        acked.set(req.leaseId, ack.version);
        // 'applied': in the weights of that version; 'buffered' (or a duplicate of one): waiting for it.
        maxAcked = Math.max(maxAcked, ack.status === 'applied' ? ack.version : ack.version - 1);
      }
      return ack;
    };
    sockets.push(socket);
    loops.push(new WorkerLoop(link, { clock: systemClock, capabilities: { backend: 'wasm', runtime: 'node' }, minBackoffMs: 100, maxBackoffMs: 500 }));
  }
  const running = loops.map((l) => l.run());
  const rnd = mulberry32(2024);
  const recoverMs: number[] = [];
  let midWrite = 0;
  const ckptDir = path.join(dataDir, 'jobs', 'mnist-mlp', 'checkpoints');
  try {
    for (let k = 0; k < KILLS; k++) {
      const before = maxAcked;
      // Let training make progress (at least a few acks), then kill at a random moment.
      const until = Date.now() + 15_000;
      while (maxAcked < before + 5 && Date.now() < until) await sleep(20);
      if (k % 3 === 0) {
        // Every third kill aims at a checkpoint write in progress (its temp directory exists).
        // (In `local` mode a loaded CI machine may take several seconds between checkpoints.)
        const aimUntil = Date.now() + 15_000;
        while (!readdirSync(ckptDir).some((n) => n.startsWith('.tmp-')) && Date.now() < aimUntil) await sleep(5);
      } else {
        await sleep(rnd() * 900);
      }
      await coord.stop('SIGKILL');
      if (readdirSync(ckptDir).some((n) => n.startsWith('.tmp-'))) midWrite++;
      const ackedAtKill = maxAcked;
      const t0 = Date.now();
      coord = await startCoordinatorProcess({ ...env, PORT: String(port) });
      recoverMs.push(Date.now() - t0);
      const job = ((await (await fetch(`${coord.url}/api/jobs`)).json()) as JobJson[])[0]!;
      assert.ok(job.version >= ackedAtKill, `kill ${k + 1}: restarted at v${job.version}, but v${ackedAtKill} was acknowledged`);
    }
    // Training still moves after the last restart.
    const last = maxAcked;
    const until = Date.now() + 20_000;
    while (maxAcked < last + 10 && Date.now() < until) await sleep(50);
    assert.ok(maxAcked >= last + 10, 'training resumed after the last restart');
  } finally {
    for (const l of loops) void l.stop();
    await coord.stop('SIGTERM');
    for (const s of sockets) s.close();
    await Promise.allSettled(running);
  }

  // Every acknowledged gradient is in the log exactly once, for the step its ack named.
  const db = new Database(path.join(dataDir, 'flock.db'), { readonly: true });
  const rows = db.prepare('SELECT version, COALESCE(step, version) AS step, lease_id FROM updates WHERE job_id = ? ORDER BY version').all('mnist-mlp') as { version: number; step: number; lease_id: string }[];
  const byLease = new Map(rows.map((r) => [r.lease_id, r.step]));
  let missing = 0;
  let wrong = 0;
  for (const [lease, version] of acked) {
    const v = byLease.get(lease);
    if (v === undefined) missing++;
    else if (v !== version) wrong++;
  }
  const versions = rows.map((r) => r.version);
  const contiguous = versions.every((v, i) => v === i + 1);
  // Each step combines exactly bufferSize logged gradients (the last one may still be filling).
  const K = aggregation === 'async' ? 1 : aggregation === 'local' ? 2 : 6;
  const perStep = new Map<number, number>();
  for (const r of rows) perStep.set(r.step, (perStep.get(r.step) ?? 0) + 1);
  const steps = [...perStep.keys()];
  assert.deepEqual(steps, steps.map((_, i) => i + 1), 'steps 1..S in log order');
  assert.ok([...perStep.values()].slice(0, -1).every((n) => n === K), `every complete step has ${K} gradients`);
  const dupShards = db.prepare('SELECT COUNT(*) AS n FROM (SELECT epoch, shard, COUNT(*) c FROM updates WHERE job_id = ? GROUP BY epoch, shard HAVING c > 1)').get('mnist-mlp') as { n: number };
  db.close();
  const mean = recoverMs.reduce((a, b) => a + b, 0) / recoverMs.length;
  console.log(
    `kill loop: ${KILLS} kills (${midWrite} during a checkpoint write), ${KILLS} recoveries, ${acked.size} acked gradients, ` +
      `${missing} lost, ${wrong} at another version, ${rows.length - new Set(rows.map((r) => r.lease_id)).size} applied twice, ` +
      `recovery ${(mean / 1000).toFixed(2)} s mean / ${(Math.max(...recoverMs) / 1000).toFixed(2)} s max`,
  );
  assert.equal(missing, 0);
  assert.equal(wrong, 0);
  assert.ok(contiguous, 'versions in the log are 1..N without gaps');
  assert.equal(dupShards.n, 0, 'no shard applied twice in an epoch');
  assert.ok(acked.size > KILLS * 5);
  assert.ok(midWrite >= 1, 'at least one kill landed during a checkpoint write');

  // A zero-filled newest checkpoint is detected and the previous one (plus the log) is used; the
  // replay reaches the same weights, bit for bit.
  const newest = readdirSync(ckptDir).filter((n) => /^v\d+$/.test(n)).sort().at(-1)!;
  const weights = path.join(ckptDir, newest, 'weights.bin');
  const exact = readFileSync(weights);
  writeFileSync(weights, Buffer.alloc(statSync(weights).size));
  const again = await startCoordinatorProcess(env);
  try {
    const job = ((await (await fetch(`${again.url}/api/jobs`)).json()) as JobJson[])[0]!;
    assert.equal(job.aggregation.bufferSize, K);
    assert.equal(job.version, Math.floor(versions.length / K), 'resumed at the last complete step');
    assert.equal(job.aggregation.buffered, versions.length % K, 'the rest wait in the buffer');
    assert.ok(again.logs.some((l) => l.includes(`${newest} failed its checksum`)), 'the corrupt checkpoint was reported');
  } finally {
    await again.stop('SIGTERM');
  }
  const replayed = readFileSync(path.join(ckptDir, readdirSync(ckptDir).filter((n) => /^v\d+$/.test(n)).sort().at(-1)!, 'weights.bin'));
  assert.ok(replayed.equals(exact), 'replay from the older checkpoint reproduced the weights bit for bit');
}
