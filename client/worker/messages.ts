// Messages between the volunteer page (main thread) and its training Web Worker.

import type { BackendName, JobDescriptor, JobUpdate, AdapterInfo } from '../../shared/protocol/messages.ts';
import type { WorkerState, WorkerStats } from '../../shared/training/worker-loop.ts';
import type { ProbeFigures } from '../../shared/training/probe.ts';
import type { ProbeOutcome } from '../../shared/training/backend-choice.ts';

export type ToWorker =
  | { type: 'start'; url: string; backend: BackendName | null; jobId: string | null; dutyCycle: number; prefetch?: boolean; pipeline?: boolean; wasmThreads?: number; identity?: { workerId: string; credential: string } }
  | { type: 'pause' }
  | { type: 'resume' }
  | { type: 'stop' }
  | { type: 'duty'; value: number }
  | { type: 'probe'; backend: BackendName | null; modelUrl: string; batchSize: number; budgetMs: number; wasmThreads?: number };

export interface BackendReport {
  readonly backend: BackendName;
  readonly adapter: AdapterInfo | null;
  /** Why this backend (e.g. "no WebGPU adapter: using WASM"). */
  readonly reason: string;
  /** Threads the WASM backend runs on (getThreadsCount(): 1 = single-threaded); 0 when WASM is not the backend. */
  readonly wasmThreads: number;
  /** The start-up measurements the choice was made from (empty when nothing was measured). */
  readonly probes: readonly ProbeOutcome[];
}

export type FromWorker =
  /** The backend in use; null: none (no backend can train the job here). */
  | { type: 'backend'; report: BackendReport | null }
  | { type: 'state'; state: WorkerState; detail: string | null }
  | { type: 'stats'; stats: WorkerStats }
  | { type: 'job'; job: Pick<JobDescriptor, 'id' | 'name' | 'description' | 'batchSize' | 'task'>; flopsPerSample: number }
  | { type: 'jobUpdate'; update: JobUpdate }
  | { type: 'probe'; figures: ProbeFigures }
  | { type: 'fatal'; message: string }
  /** The coordinator-issued id and credential: the page keeps them for the next visit. */
  | { type: 'identity'; workerId: string; credential: string };
