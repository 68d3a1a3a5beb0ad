// Held-out evaluation in a worker thread (eval-thread.ts), so the coordinator's event loop keeps
// applying pushes while a test pass runs. Same contract as Evaluator.evaluate; owns the thread and
// the requests in flight. The test rows are copied to the thread once, at the first evaluation.
// Falls back to the in-process Evaluator when the thread cannot start (it says so once).

import { Worker } from 'node:worker_threads';
import { Evaluator, type EvalResult } from './evaluator.ts';
import type { StepSpec } from '../../shared/training/gradient-step.ts';
import type { TensorSpec } from '../../shared/codec/tensor-codec.ts';
import type { JobData } from '../data/job-data.ts';

type Reply = { id: number; ok: true; result: EvalResult } | { id: number; ok: false; message: string };

export class ThreadedEvaluator {
  private worker: Worker | null = null;
  private fallback: Evaluator | null = null;
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (r: EvalResult) => void; reject: (e: Error) => void }>();

  constructor(
    private readonly topology: unknown,
    private readonly spec: StepSpec,
    private readonly data: JobData,
    private readonly onFallback: (why: string) => void = () => {},
  ) {}

  private start(): Worker | null {
    if (this.worker || this.fallback) return this.worker;
    try {
      // The boot file registers tsx's loader in the thread, then loads eval-thread.ts.
      const w = new Worker(new URL('./eval-thread-boot.mjs', import.meta.url));
      const n = this.data.count('test');
      const rows = this.data.read('test', 0, n);
      w.postMessage({ kind: 'init', topology: this.topology, spec: this.spec, x: rows.x.slice(), y: rows.y.slice(), count: n });
      w.on('message', (r: Reply) => {
        const p = this.waiting.get(r.id);
        if (!p) return;
        this.waiting.delete(r.id);
        if (this.waiting.size === 0) w.unref();
        if (r.ok) p.resolve(r.result);
        else p.reject(new Error(r.message));
      });
      w.on('error', (err) => this.failAll(err));
      w.on('exit', () => {
        this.failAll(new Error('evaluation thread exited'));
        this.worker = null;
      });
      w.unref();
      this.worker = w;
      return w;
    } catch (err) {
      this.onFallback((err as Error).message);
      this.fallback = new Evaluator(this.topology, this.spec, this.data);
      return null;
    }
  }

  private failAll(err: Error): void {
    for (const p of this.waiting.values()) p.reject(err);
    this.waiting.clear();
  }

  /** `weights` is copied to the thread (the caller's snapshot stays valid for it). */
  evaluate(version: number, specs: readonly TensorSpec[], weights: Float32Array, now: () => number): Promise<EvalResult> {
    const w = this.start();
    if (!w) return this.fallback!.evaluate(version, specs, weights, now);
    const t0 = now();
    const id = this.nextId++;
    return new Promise<EvalResult>((resolve, reject) => {
      this.waiting.set(id, { resolve: (r) => resolve({ ...r, at: now(), ms: now() - t0 }), reject });
      w.ref(); // an evaluation in flight keeps the process alive; an idle thread does not
      w.postMessage({ kind: 'eval', id, version, specs, weights });
    });
  }

  dispose(): void {
    this.fallback?.dispose();
    void this.worker?.terminate();
    this.worker = null;
  }
}
