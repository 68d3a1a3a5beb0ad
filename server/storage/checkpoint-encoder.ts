// Who packs and hashes checkpoints: a worker thread (checkpoint-thread.ts), one per process and
// shared by every job, so a push never waits behind ~16 MB of copying and SHA-256 (a 1M-parameter
// model with Adam). Owns the thread and the requests in flight. The arrays of a checkpoint are
// moved to the thread, not copied: callers hand over arrays they own (snapshots are copies anyway).
// No fallback onto the event loop: Node always has worker threads, and the thread loads through
// the same tsx loader as the coordinator itself; a failure is reported by the checkpoint it fails.

import { Worker } from 'node:worker_threads';
import { encodeCheckpoint, sha256, type CheckpointInput, type EncodedCheckpoint } from './checkpoint-encoding.ts';
import type { ThreadJob } from './checkpoint-thread.ts';

export interface CheckpointEncoder {
  /** Encodes `cp`; its arrays are handed over (detached here when they move to a thread). */
  encode(cp: CheckpointInput): Promise<EncodedCheckpoint>;
  /** SHA-256 (hex) of each part, in order; the arrays are handed over. */
  digest(parts: readonly (Uint8Array | string)[]): Promise<string[]>;
}

/** On the calling thread: what the thread runs, for benchmarks and comparisons. */
export const inlineEncoder: CheckpointEncoder = {
  encode: async (cp) => encodeCheckpoint(cp),
  digest: async (parts) => parts.map(sha256),
};

type Reply = { id: number; ok: true; value: unknown } | { id: number; ok: false; message: string };

/** A view over a whole ArrayBuffer of its own, which can move to another thread. */
function movable<T extends Uint8Array | Float32Array>(a: T): T {
  return a.byteOffset === 0 && a.byteLength === a.buffer.byteLength && a.buffer instanceof ArrayBuffer ? a : (a.slice() as T);
}

export class ThreadedCheckpointEncoder implements CheckpointEncoder {
  private worker: Worker | null = null;
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  private start(): Worker {
    if (this.worker) return this.worker;
    // The boot file registers tsx's loader in the thread, then loads checkpoint-thread.ts.
    const w = new Worker(new URL('./checkpoint-thread-boot.mjs', import.meta.url));
    w.on('message', (r: Reply) => {
      const p = this.waiting.get(r.id);
      if (!p) return;
      this.waiting.delete(r.id);
      if (this.waiting.size === 0) w.unref();
      if (r.ok) p.resolve(r.value);
      else p.reject(new Error(r.message));
    });
    w.on('error', (err) => this.failAll(err));
    w.on('exit', (code) => {
      if (this.worker === w) this.worker = null;
      this.failAll(new Error(`checkpoint thread exited (code ${code})`));
    });
    w.unref();
    this.worker = w;
    return w;
  }

  private failAll(err: Error): void {
    for (const p of this.waiting.values()) p.reject(err);
    this.waiting.clear();
  }

  encode(cp: CheckpointInput): Promise<EncodedCheckpoint> {
    const weights = movable(cp.weights);
    const optimizer = cp.optimizer instanceof Uint8Array ? movable(cp.optimizer) : cp.optimizer.map(movable);
    const arrays = [weights, ...(optimizer instanceof Uint8Array ? [optimizer] : optimizer)];
    return this.request({ kind: 'encode', cp: { ...cp, weights, optimizer } }, arrays) as Promise<EncodedCheckpoint>;
  }

  digest(parts: readonly (Uint8Array | string)[]): Promise<string[]> {
    const moved = parts.map((p) => (typeof p === 'string' ? p : movable(p)));
    return this.request({ kind: 'digest', parts: moved }, moved.filter((p): p is Uint8Array => typeof p !== 'string')) as Promise<string[]>;
  }

  /** Posts `req`, moving the buffers of `arrays` (each spans its whole buffer) to the thread. */
  private request(req: ThreadJob, arrays: readonly (Uint8Array | Float32Array)[]): Promise<unknown> {
    const w = this.start();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      w.ref(); // a request in flight keeps the process alive; an idle thread does not
      try {
        w.postMessage({ ...req, id }, [...new Set(arrays.map((a) => a.buffer as ArrayBuffer))]);
      } catch (err) {
        // Not cloneable (a runtime snapshot that is not plain data): nothing was sent.
        this.waiting.delete(id);
        if (this.waiting.size === 0) w.unref();
        reject(err as Error);
      }
    });
  }

  /** Ends the thread (tests, benchmarks); a later encode starts a new one. */
  async close(): Promise<void> {
    const w = this.worker;
    this.worker = null;
    await w?.terminate();
  }
}

let shared: ThreadedCheckpointEncoder | null = null;

/** The process's checkpoint thread, started at the first checkpoint. */
export function sharedCheckpointEncoder(): ThreadedCheckpointEncoder {
  return (shared ??= new ThreadedCheckpointEncoder());
}
