// WAL checkpoints off the event loop for the SQLite store (sqlite-state-store.ts). SQLite's own
// auto-checkpoint runs inside the COMMIT that crosses 1,000 WAL pages, on the committing thread: with
// gradients in the log (400 KB each at 100k parameters) that was two thirds of every commit's time
// (1.8 ms per gradient against 0.6 ms without it, measured on the dev machine). Here the store turns
// auto-checkpoint off and tells this class how many bytes each commit wrote; past `everyBytes` since
// the last checkpoint, a worker thread with its own connection runs a PASSIVE checkpoint (never blocks
// the writer). One checkpoint in flight at a time. The frames committed since are finished by the
// store on its own connection right after its next commit (a few pages), so the WAL can start over
// from its beginning rather than grow under steady load. The thread starts after the first MB
// committed (a small store never starts one). Backstop: past 4 x `everyBytes` since a checkpoint
// last finished (the thread starting, or behind), the store checkpoints on its own connection once,
// as SQLite would have, so the WAL stays bounded whatever the thread does. If the thread fails, the
// store gets auto-checkpoint back (`fallback`) and is told once.

import { Worker } from 'node:worker_threads';

export interface WalCheckpointerOptions {
  readonly file: string;
  /** Bytes committed between checkpoints (SQLite's default auto-checkpoint is 1,000 pages, ~4 MB). */
  readonly everyBytes?: number;
  /** Turns SQLite's auto-checkpoint back on (the thread could not run). */
  readonly fallback: (reason: string) => void;
}

interface Reply { ok: boolean; busy?: number; log?: number; checkpointed?: number; message?: string }

export class WalCheckpointer {
  private worker: Worker | null = null;
  private pendingBytes = 0;
  /** Bytes committed since a checkpoint last finished (thread or main). */
  private sinceDone = 0;
  private inFlight = false;
  private again = false;
  private failed = false;
  private closed = false;
  private finish = false;
  private readonly everyBytes: number;
  /** Checkpoints completed, and the WAL's frame count seen at the last one (tests, diagnostics). */
  readonly counts = { checkpoints: 0, lastLogFrames: 0, lastCheckpointedFrames: 0, onMainThread: 0, backstops: 0 };

  constructor(private readonly opts: WalCheckpointerOptions) {
    this.everyBytes = opts.everyBytes ?? 4 * 1024 * 1024;
  }

  /**
   * After a COMMIT that wrote about `bytes`, outside any transaction. `finishHere` runs a PASSIVE
   * checkpoint on the store's own connection: called once after each of the thread's checkpoints
   * (only the frames committed since are left to copy).
   */
  committed(bytes: number, finishHere: () => void): void {
    if (this.failed || this.closed) return;
    this.pendingBytes += bytes;
    this.sinceDone += bytes;
    // Warm the thread early (it takes tens of ms to start), so the first checkpoint is not late.
    if (!this.worker && this.sinceDone >= this.everyBytes / 4) this.warm();
    if (this.pendingBytes >= this.everyBytes) {
      this.pendingBytes = 0;
      this.again = true;
    }
    // (While the thread's checkpoint runs, one here would only find the checkpoint lock taken.)
    if (!this.inFlight && (this.finish || this.sinceDone >= 4 * this.everyBytes)) {
      // After a thread checkpoint: the frames committed since. Backstop: the thread is not keeping
      // up (starting, or a long checkpoint): SQLite's own way, this once, so the WAL stays bounded.
      if (!this.finish) this.counts.backstops++;
      this.finish = false;
      finishHere();
      this.counts.onMainThread++;
      this.sinceDone = 0;
      // The next request waits for the next commit: the writer in between rewinds the WAL first.
      return;
    }
    if (this.again && !this.inFlight) {
      this.again = false;
      this.request();
    }
  }

  private warm(): void {
    try {
      this.start();
    } catch (err) {
      this.fail(`could not start the WAL checkpoint thread: ${(err as Error).message}`);
    }
  }

  private request(): void {
    let w: Worker;
    try {
      w = this.start();
    } catch (err) {
      this.fail(`could not start the WAL checkpoint thread: ${(err as Error).message}`);
      return;
    }
    this.inFlight = true;
    w.ref();
    w.postMessage('checkpoint');
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    // Plain JavaScript: no loader flags (tsx) in the thread, so it starts in tens of ms.
    const w = new Worker(new URL('./wal-checkpoint-thread.mjs', import.meta.url), { workerData: { file: this.opts.file }, execArgv: [] });
    w.unref();
    w.on('message', (r: Reply) => {
      this.inFlight = false;
      if (!r.ok) return this.fail(`WAL checkpoint failed: ${r.message}`);
      this.counts.checkpoints++;
      this.sinceDone = 0;
      this.counts.lastLogFrames = r.log ?? 0;
      this.counts.lastCheckpointedFrames = r.checkpointed ?? 0;
      // SQLite rewinds the WAL only for a write transaction whose snapshot began with every frame
      // copied, which a thread can never arrange while the store keeps committing: the store copies
      // the frames committed since (a few pages) right after its next commit (`finishHere`), the
      // transaction after that rewinds, and the next request goes out at the commit after. The WAL
      // file so stays near `everyBytes` under steady load instead of growing.
      this.finish = true;
      w.unref();
    });
    w.on('error', (err) => this.fail(`WAL checkpoint thread: ${err.message}`));
    w.on('exit', (code) => {
      this.worker = null;
      this.inFlight = false;
      if (!this.closed && code !== 0) this.fail(`WAL checkpoint thread exited with code ${code}`);
    });
    this.worker = w;
    return w;
  }

  private fail(reason: string): void {
    if (this.failed || this.closed) return;
    this.failed = true;
    this.opts.fallback(reason);
    void this.worker?.terminate();
  }

  /** Lets the thread close its connection and end (the store closes its own after this). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const w = this.worker;
    if (!w) return;
    w.postMessage('close');
    w.unref();
  }
}
