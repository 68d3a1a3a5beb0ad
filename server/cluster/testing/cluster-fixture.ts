// Test and benchmark fixture: N real coordinator processes (server/main.ts) on one private Redis,
// and Node workers (the real worker loop) spread over them round-robin, each keeping its own record
// of every gradient the cluster acknowledged (lease id -> version), so tests can check that none
// was lost or applied twice against the update log in Redis.

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { io } from 'socket.io-client';
import { startCoordinatorProcess, type CoordinatorProcess } from '../../../e2e/coordinator-process.ts';
export type { CoordinatorProcess };
import { SocketLink, type FlockSocket } from '../../../shared/training/link.ts';
import { WorkerLoop } from '../../../shared/training/worker-loop.ts';
import { systemClock } from '../../../shared/clock.ts';
import { RedisStateStore } from '../../storage/redis-state-store.ts';
import type { RedisFixture } from '../../storage/testing/redis-server.ts';

export const ADMIN_TOKEN = 'cluster-test-token-0123456789';

export function clusterEnv(redis: RedisFixture, extra: Record<string, string> = {}): Record<string, string> {
  return {
    FLOCK_STORE: 'redis',
    FLOCK_REDIS_URL: redis.url,
    FLOCK_ADMIN_TOKEN: ADMIN_TOKEN,
    FLOCK_DEMO: 'mnist-mlp',
    FLOCK_BATCH_SIZE: '64',
    FLOCK_EVAL_EVERY: '50',
    FLOCK_MAX_EPOCHS: '100',
    FLOCK_LEASE_TIMEOUT_MS: '4000',
    FLOCK_LEADER_TTL_MS: '1500',
    FLOCK_DRAIN_MS: '0',
    ...extra,
  };
}

export async function startProcess(env: Record<string, string>, port = 0): Promise<CoordinatorProcess> {
  return startCoordinatorProcess({ ...env, FLOCK_DATA_DIR: mkdtempSync(path.join(tmpdir(), 'flock-node-')), PORT: String(port) });
}

/**
 * A supervisor, as the README asks for (systemd Restart=always): a process in `procs` that exits by
 * itself (a crash: a deposed owner steps down and keeps running) is started again on its port, in
 * place. Processes the test SIGKILLs itself are left to the test.
 */
export function supervise(procs: CoordinatorProcess[], env: Record<string, string>): { readonly restarts: () => number; stop(): void } {
  let restarts = 0;
  const restarting = new Set<number>();
  const timer = setInterval(() => {
    procs.forEach((p, j) => {
      if (p.proc.exitCode === null || p.proc.signalCode === 'SIGKILL' || restarting.has(j)) return;
      restarts++;
      restarting.add(j);
      void startProcess(env, p.port).then((q) => {
        procs[j] = q;
        restarting.delete(j);
      });
    });
  }, 200);
  return { restarts: () => restarts, stop: () => clearInterval(timer) };
}

export interface Workers {
  readonly acked: Map<string, number>;
  /** job:update broadcasts each worker received (index = worker; its process is urls[i % n]). */
  readonly updates: number[];
  /** Acknowledged gradients per worker, and the lease ids each had acknowledged (index = worker). */
  readonly ackedBy: number[];
  readonly leasesOf: Set<string>[];
  /** How often each worker's socket lost its connection (index = worker). */
  readonly disconnects: number[];
  maxAcked(): number;
  stop(): Promise<void>;
}

/** Starts `n` workers, worker i connected to urls[i % urls.length]. */
export function startWorkers(urls: string[], n: number): Workers {
  const acked = new Map<string, number>();
  const updates: number[] = Array.from({ length: n }, () => 0);
  const ackedBy: number[] = Array.from({ length: n }, () => 0);
  const leasesOf: Set<string>[] = Array.from({ length: n }, () => new Set<string>());
  const disconnects: number[] = Array.from({ length: n }, () => 0);
  let stopping = false;
  let max = 0;
  const sockets: FlockSocket[] = [];
  const loops: WorkerLoop[] = [];
  for (let i = 0; i < n; i++) {
    const socket: FlockSocket = io(urls[i % urls.length]!, { transports: ['websocket'], reconnectionDelay: 100, reconnectionDelayMax: 500 });
    const link = new SocketLink(socket, 8000);
    socket.on('job:update', () => updates[i]!++);
    socket.on('disconnect', () => {
      if (!stopping) disconnects[i]!++;
    });
    const push = link.pushGradient.bind(link);
    link.pushGradient = async (req) => {
      const ack = await push(req);
      if (ack.ok) {
        const prior = acked.get(req.leaseId);
        if (prior !== undefined && prior !== ack.version) throw new Error(`lease ${req.leaseId} acked at v${prior} and v${ack.version}`);
        acked.set(req.leaseId, ack.version);
        if (!leasesOf[i]!.has(req.leaseId)) ackedBy[i]!++;
        leasesOf[i]!.add(req.leaseId);
        max = Math.max(max, ack.version);
      }
      return ack;
    };
    sockets.push(socket);
    loops.push(new WorkerLoop(link, { clock: systemClock, capabilities: { backend: 'wasm', runtime: 'node' }, minBackoffMs: 100, maxBackoffMs: 500 }));
  }
  const running = loops.map((l) => l.run().catch(() => undefined));
  return {
    acked,
    updates,
    ackedBy,
    leasesOf,
    disconnects,
    maxAcked: () => max,
    async stop() {
      stopping = true;
      for (const l of loops) void l.stop();
      for (const s of sockets) s.close();
      await Promise.allSettled(running);
    },
  };
}

export interface LogAudit {
  readonly logged: number;
  readonly lost: number;
  readonly wrongVersion: number;
  readonly doubledLeases: number;
  readonly doubledShards: number;
  readonly contiguous: boolean;
}

/** Checks the workers' acknowledged gradients against the update log in Redis. */
export async function auditLog(redisUrl: string, jobId: string, acked: Map<string, number>): Promise<LogAudit> {
  const store = await RedisStateStore.open(redisUrl);
  try {
    const rows = store.updatesAfter(jobId, 0);
    // An ack names the step its gradient joins (`step`; equal to the log position `version` for async
    // jobs, shared by bufferSize records with the default buffered aggregation).
    const byLease = new Map(rows.map((r) => [r.leaseId, r.step ?? r.version]));
    let lost = 0;
    let wrongVersion = 0;
    for (const [lease, v] of acked) {
      const got = byLease.get(lease);
      if (got === undefined) lost++;
      else if (got !== v) wrongVersion++;
    }
    const shards = new Map<string, number>();
    for (const r of rows) shards.set(`${r.epoch}/${r.shard}`, (shards.get(`${r.epoch}/${r.shard}`) ?? 0) + 1);
    return {
      logged: rows.length,
      lost,
      wrongVersion,
      doubledLeases: rows.length - byLease.size,
      doubledShards: [...shards.values()].filter((c) => c > 1).length,
      contiguous: rows.every((r, i) => r.version === i + 1),
    };
  } finally {
    store.close();
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
