// A worker in Node: socket.io-client + the shared WorkerLoop on tfjs WASM. Used by integration
// tests and benchmarks (and by anyone contributing a server's CPU instead of a browser tab).

import { io } from 'socket.io-client';
import { systemClock, type Clock } from '../clock.ts';
import { SocketLink, type FlockSocket } from './link.ts';
import { WorkerLoop, type LoopOptions } from './worker-loop.ts';
import { initNodeBackend } from './node-backend.ts';

export interface NodeWorker {
  readonly loop: WorkerLoop;
  readonly socket: FlockSocket;
  readonly done: Promise<void>;
  /** Stops the loop (handing back its lease) and closes the connection. */
  stop(): Promise<void>;
  /** Drops the connection abruptly, like a closed tab (no lease release). */
  kill(): void;
}

export async function startNodeWorker(
  url: string,
  opts: Partial<Omit<LoopOptions, 'capabilities' | 'clock'>> & { clock?: Clock } = {},
): Promise<NodeWorker> {
  const backend = await initNodeBackend('wasm');
  const socket: FlockSocket = io(url, { transports: ['websocket'], reconnectionDelay: 200, reconnectionDelayMax: 2000 });
  const link = new SocketLink(socket, 15_000);
  const loop = new WorkerLoop(link, {
    ...opts,
    clock: opts.clock ?? systemClock,
    capabilities: { backend: backend === 'wasm' ? 'wasm' : 'cpu', runtime: 'node', hardwareConcurrency: 1 },
  });
  return runNodeWorker(loop, socket);
}

/** Runs `loop` over `socket` and gives the handle to stop it or drop it (also for test fixtures' own links). */
export function runNodeWorker(loop: WorkerLoop, socket: FlockSocket): NodeWorker {
  const done = loop.run();
  return {
    loop,
    socket,
    done,
    async stop() {
      await loop.stop();
      await done;
      socket.close();
    },
    kill() {
      socket.disconnect();
      void loop.stop();
    },
  };
}
