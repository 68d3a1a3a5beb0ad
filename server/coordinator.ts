// Assembles a coordinator: config -> tfjs -> dataset -> job registry -> HTTP + socket.io.
// Used by server/main.ts (the CLI) and by integration tests (port 0, temp data dir).

import { Server as IoServer } from 'socket.io';
import { randomBytes, randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { systemClock, type Clock } from '../shared/clock.ts';
import { initNodeBackend } from '../shared/training/node-backend.ts';
import { loadMnist, type Dataset } from './data/dataset.ts';
import { JobRegistry } from './jobs/registry.ts';
import { demoConfig, type DemoName } from './jobs/demos.ts';
import type { JobConfig } from './jobs/job-config.ts';
import type { Logger } from './jobs/job-runtime.ts';
import { attachWorkerHandlers, type FlockServer, type TransportObserver } from './transport/socket-handlers.ts';
import { createHttpServer } from './http/http-server.ts';
import { WorkerStatsBook } from './jobs/worker-stats.ts';
import { TelemetryBook } from './jobs/job-telemetry.ts';
import { AdminFeed } from './transport/admin-socket.ts';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { StateStore } from './storage/state-store.ts';
import { MemoryStateStore } from './storage/memory-state-store.ts';
import { SqliteStateStore } from './storage/sqlite-state-store.ts';
import type { SchedulerPolicy } from './jobs/scheduler.ts';

export interface CoordinatorOptions {
  readonly port: number;
  readonly host: string;
  readonly dataDir: string;
  readonly clientDir: string;
  readonly adminToken?: string | undefined;
  /** Demo job created when the data dir has no job yet; null for none. */
  readonly demo: DemoName | null;
  readonly demoOverrides?: Partial<JobConfig> | undefined;
  readonly clock?: Clock | undefined;
  readonly log?: Logger | undefined;
  readonly dataset?: Dataset | undefined;
  readonly sweepIntervalMs?: number | undefined;
  /** Durable state: 'sqlite' (default, <dataDir>/flock.db) or 'memory' (nothing survives). */
  readonly store?: 'sqlite' | 'memory' | undefined;
  readonly sqliteSync?: 'NORMAL' | 'FULL' | undefined;
  /** Fault injection only: pause inside every checkpoint write (FLOCK_FAULT_CHECKPOINT_PAUSE_MS). */
  readonly checkpointPauseMs?: number | undefined;
  /** socket.io message size cap; weights of big models exceed the 1 MB default. */
  readonly maxMessageBytes?: number | undefined;
  /** Placement of workers that pin no job (dwell time, margin...): server/jobs/scheduler.ts defaults. */
  readonly scheduling?: Partial<SchedulerPolicy> | undefined;
}

export interface Coordinator {
  readonly url: string;
  readonly port: number;
  readonly adminToken: string;
  readonly registry: JobRegistry;
  readonly io: FlockServer;
  readonly state: StateStore;
  /** True when this start created the demo job (the data dir held no job). */
  readonly createdDemo: boolean;
  /** Per-worker statistics (dashboard workers table). */
  readonly workerStats: WorkerStatsBook;
  /** Graceful stop: no new leases, wait up to drainMs for outstanding ones, checkpoint, close. */
  shutdown(drainMs: number): Promise<void>;
  close(): Promise<void>;
}

export const consoleLogger: Logger = {
  info: (m) => console.log(`[flock] ${m}`),
  warn: (m) => console.warn(`[flock] WARN ${m}`),
};

export async function startCoordinator(opts: CoordinatorOptions): Promise<Coordinator> {
  const clock = opts.clock ?? systemClock;
  const log = opts.log ?? consoleLogger;
  await initNodeBackend('wasm');
  const dataset = opts.dataset ?? (await loadMnist());
  await mkdir(opts.dataDir, { recursive: true });
  const state: StateStore = opts.store === 'memory' ? new MemoryStateStore() : new SqliteStateStore(path.join(opts.dataDir, 'flock.db'), opts.sqliteSync ?? 'NORMAL');
  const registry = new JobRegistry({ clock, dataset, log, state, newId: () => randomUUID(), dataDir: opts.dataDir, keepCheckpoints: 3, checkpointPauseMs: opts.checkpointPauseMs });
  await registry.loadAll();
  const createdDemo = registry.all().length === 0 && opts.demo !== null;
  if (createdDemo && opts.demo) {
    await registry.create(opts.demo, demoConfig(opts.demo, opts.demoOverrides));
    log.info(`created demo job ${opts.demo}`);
  }
  const adminToken = opts.adminToken || randomBytes(18).toString('base64url');

  let workersFn: () => unknown[] = () => [];
  const workerStats = new WorkerStatsBook(clock);
  const telemetry = new TelemetryBook(clock);
  const http = createHttpServer({ registry, adminToken, clientDir: opts.clientDir, workers: () => workersFn(), workerStats, telemetry });
  const io: FlockServer = new IoServer(http, {
    maxHttpBufferSize: opts.maxMessageBytes ?? 64 * 1024 * 1024,
    pingInterval: 10_000,
    pingTimeout: 10_000,
    perMessageDeflate: false,
  });
  // The dashboard's feed (namespace /admin, token-checked) and the worker statistics it shows.
  const adminFeed = new AdminFeed({ io, registry, workers: workerStats, telemetry, adminToken, clock, log });
  const observers: TransportObserver[] = [workerStats, adminFeed];
  const observer: TransportObserver = {
    hello: (w, c, at) => observers.forEach((o) => o.hello?.(w, c, at)),
    joined: (w, j) => observers.forEach((o) => o.joined?.(w, j)),
    leased: (w, j, a) => observers.forEach((o) => o.leased?.(w, j, a)),
    pushed: (w, j, p, a) => observers.forEach((o) => o.pushed?.(w, j, p, a)),
    released: (w, j) => observers.forEach((o) => o.released?.(w, j)),
    left: (w, j) => observers.forEach((o) => o.left?.(w, j)),
  };
  const handlers = attachWorkerHandlers(io, registry, clock, log, observer, state, opts.scheduling ?? {});
  workersFn = handlers.workers;
  const sampler = setInterval(() => telemetry.sample(registry.all().map((j) => j.summary())), 1000);
  sampler.unref();

  const sweep = setInterval(() => {
    for (const job of registry.all()) {
      const n = job.sweep();
      if (n > 0) log.info(`job ${job.id}: ${n} lease(s) expired and will be reissued`);
    }
  }, opts.sweepIntervalMs ?? 1000);
  sweep.unref();

  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(opts.port, opts.host, () => resolve());
  });
  const port = (http.address() as AddressInfo).port;
  const url = `http://${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${port}`;

  async function close(): Promise<void> {
    clearInterval(sweep);
    clearInterval(sampler);
    adminFeed.close();
    io.close();
    await new Promise<void>((r) => http.close(() => r()));
    for (const job of registry.all()) {
      await job.settle();
      job.dispose();
    }
    state.close();
  }

  return {
    url,
    port,
    adminToken,
    registry,
    io,
    state,
    workerStats,
    createdDemo,
    async shutdown(drainMs: number) {
      await Promise.all(registry.all().map((job) => job.drain(drainMs)));
      for (const job of registry.all()) {
        await job.settle();
        await job.checkpoint();
      }
      await close();
    },
    close,
  };
}
