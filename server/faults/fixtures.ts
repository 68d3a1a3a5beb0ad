// Fault fixtures for the fault-injection tests: workers that vanish, stall, crawl or lie, and
// helpers to run a coordinator on a slice of the real MNIST. Test-only code.

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadMnist, sliceDataset, type Dataset } from '../data/dataset.ts';
import { startCoordinator, type Coordinator } from '../coordinator.ts';
import type { JobConfig } from '../jobs/job-config.ts';
import { runNodeWorker, startNodeWorker, type NodeWorker } from '../../shared/training/node-worker.ts';
import type { LeasePayload } from '../../shared/protocol/messages.ts';
import { io } from 'socket.io-client';
import { SocketLink, type FlockSocket } from '../../shared/training/link.ts';
import { WorkerLoop } from '../../shared/training/worker-loop.ts';
import { initNodeBackend } from '../../shared/training/node-backend.ts';
import { systemClock } from '../../shared/clock.ts';
import { toBytes } from '../../shared/codec/tensor-codec.ts';
import type { Attack } from './attacks.ts';

export const silentLog = { info(): void {}, warn(): void {} };

/** The first `train` training and `test` test examples of the real MNIST. */
export async function mnistSlice(train: number, test: number): Promise<Dataset> {
  return sliceDataset(await loadMnist(), train, test);
}

export async function sliceCoordinator(dataset: Dataset, overrides: Partial<JobConfig>, dataDir?: string): Promise<Coordinator> {
  return startCoordinator({
    port: 0,
    host: '127.0.0.1',
    dataDir: dataDir ?? mkdtempSync(path.join(tmpdir(), 'flock-fault-')),
    clientDir: path.join(tmpdir(), 'flock-no-pages'),
    demo: 'mnist-mlp',
    demoOverrides: overrides,
    dataset,
    log: silentLog,
    sweepIntervalMs: 100,
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A worker that takes a lease and then never answers (a sleeping laptop: no disconnect). */
export function stallingWorker(url: string, onStall?: (lease: LeasePayload) => void): Promise<NodeWorker> {
  return startNodeWorker(url, {
    beforePush: (lease) => {
      onStall?.(lease);
      return new Promise<void>(() => {});
    },
  });
}

/** A worker `factor` times slower than its compute: it waits (factor - 1) x compute before each push. */
export async function slowWorker(url: string, factor: number): Promise<NodeWorker> {
  // The lease's own compute time (the loop's counter), not wall time since the last push: a paused
  // straggler must not come back holding its next lease for (factor - 1) x the pause.
  let counted = 0;
  let worker: NodeWorker | null = null;
  worker = await startNodeWorker(url, {
    beforePush: async () => {
      const total = worker?.loop.stats.computeMs ?? 0;
      const spent = total - counted;
      counted = total;
      await sleep(spent * (factor - 1));
    },
  });
  return worker;
}

export async function waitFor(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/**
 * A Node worker that computes honest gradients and sends `attack(gradient)` instead (a Byzantine
 * volunteer: same speed as the honest ones, so its share of the gradients is its share of workers).
 */
export async function attackingWorker(url: string, attack: Attack): Promise<NodeWorker & { sent: () => number }> {
  const backend = await initNodeBackend('wasm');
  const socket: FlockSocket = io(url, { transports: ['websocket'], reconnectionDelay: 200, reconnectionDelayMax: 2000 });
  const link = new SocketLink(socket, 15_000);
  const push = link.pushGradient.bind(link);
  let sent = 0;
  link.pushGradient = async (req) => {
    const bytes = toBytes(req.data);
    const honest = new Float32Array(bytes.slice().buffer);
    sent++;
    return push({ ...req, data: attack(honest).buffer as ArrayBuffer });
  };
  const loop = new WorkerLoop(link, { clock: systemClock, capabilities: { backend: backend === 'wasm' ? 'wasm' : 'cpu', runtime: 'node', hardwareConcurrency: 1 } });
  return { ...runNodeWorker(loop, socket), sent: () => sent };
}
