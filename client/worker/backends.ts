// tfjs backends in the tab: loads WebGPU, WASM and CPU with the Flock kernels, reads the WebGPU
// adapter, and picks the backend for a job by measuring each usable one on the job's model
// (shared/training/backend-choice.ts decides). `?backend=` forces one. Runs in the Web Worker.

import { tf } from '../../shared/training/tf.ts';
import '@tensorflow/tfjs-backend-webgpu';
import { getThreadsCount, setThreadsCount, setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import type { AdapterInfo, BackendName, JobDescriptor, ProbeResult } from '../../shared/protocol/messages.ts';
import type { BackendReport } from './messages.ts';
import { registerFlockKernels } from '../../shared/kernels/index.ts';
import { decideBackend, PROBE_BUDGET_MS, probePlan, type ProbeOutcome } from '../../shared/training/backend-choice.ts';
import { probeBackends } from '../../shared/training/probe.ts';
import type { BackendFailure } from '../../shared/training/worker-loop.ts';

let initialised = false;
/** Pool size asked for with `?wasmThreads=N` (0: tfjs's default). */
let requestedWasmThreads = 0;

/** Whether this realm can run tfjs's threaded WASM build (cross-origin isolated, with shared memory). */
export function wasmThreadsPossible(): boolean {
  return globalThis.crossOriginIsolated === true && typeof SharedArrayBuffer === 'function';
}

/**
 * Once per realm, before any backend starts: Flock kernels, the .wasm location, and WASM threads.
 *
 * Where the worker is cross-origin isolated (the coordinator sends COOP/COEP), tfjs loads its
 * threaded SIMD build. Its pthreads start from a Blob of the factory's source, which
 * vite.config.ts keeps unminified (minified, they died with "e is not defined"). tfjs sizes the
 * pool at half the logical cores, so 1 on a 2-core machine (the threaded build then runs on one
 * thread); on 2 cores a second thread measured no gain. Elsewhere: the SIMD-only build.
 * Benchmarks: `wasmThreads` (`?wasmThreads=N`) sets the pool size; 0 forces the SIMD-only build.
 */
export function initTfjs(wasmThreads?: number): void {
  if (initialised) return;
  initialised = true;
  // Gradient kernels tfjs-backend-wasm lacks (Conv2DBackpropFilter...) and fixes (MaxPoolGrad).
  registerFlockKernels();
  setWasmPaths('/wasm/');
  if (!wasmThreadsPossible() || wasmThreads === 0) {
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  } else if (wasmThreads !== undefined && Number.isInteger(wasmThreads) && wasmThreads > 0) {
    setThreadsCount(wasmThreads);
    requestedWasmThreads = wasmThreads;
  }
}

/**
 * tfjs's native code caps the pool at hardwareConcurrency / 2, read once as the module starts
 * (init_with_threads_count: min(requested, 8, cores / 2)), so setThreadsCount alone cannot go
 * past it. An explicit `?wasmThreads=N` lifts that cap by showing the module a core count of 2N
 * while it starts; this worker's navigator is restored at once.
 */
async function withWasmCoreCount<T>(start: () => Promise<T>): Promise<T> {
  const nav = globalThis.navigator as { hardwareConcurrency: number };
  if (requestedWasmThreads * 2 <= nav.hardwareConcurrency) return start();
  Object.defineProperty(nav, 'hardwareConcurrency', { value: requestedWasmThreads * 2, configurable: true });
  try {
    return await start();
  } finally {
    delete (nav as { hardwareConcurrency?: number }).hardwareConcurrency;
  }
}

/** Threads the WASM backend really runs on (1: single-threaded), or 0 when WASM is not active. */
export function wasmThreadsInUse(): number {
  if (tf.getBackend() !== 'wasm') return 0;
  try {
    return getThreadsCount();
  } catch {
    return 0;
  }
}

interface GpuLike {
  requestAdapter(): Promise<{ info?: { vendor: string; architecture: string; description: string }; isFallbackAdapter?: boolean } | null>;
}

export async function adapterInfo(): Promise<AdapterInfo | null> {
  const gpu = (globalThis.navigator as unknown as { gpu?: GpuLike }).gpu;
  if (!gpu) return null;
  try {
    const a = await gpu.requestAdapter();
    if (!a) return null;
    const info = a.info ?? { vendor: 'unknown', architecture: 'unknown', description: '' };
    const fallback = a.isFallbackAdapter ?? (info as { isFallbackAdapter?: boolean }).isFallbackAdapter ?? false;
    return { vendor: info.vendor, architecture: info.architecture, description: info.description, isFallbackAdapter: fallback || info.architecture === 'swiftshader' };
  } catch {
    return null;
  }
}

/** Makes `name` the active backend; false when it cannot start here. */
export async function useBackend(name: BackendName): Promise<boolean> {
  try {
    const started = name === 'wasm' ? await withWasmCoreCount(() => tf.setBackend(name)) : await tf.setBackend(name);
    if (!started || tf.getBackend() !== name) return false;
    await tf.ready();
    return true;
  } catch {
    return false;
  }
}

/**
 * A backend without measuring anything (benchmarks' ?probe= path, and until the job is known):
 * the forced one if it starts, else WASM, else CPU.
 */
export async function startWithoutProbe(forced: BackendName | null, wasmThreads?: number): Promise<BackendReport> {
  initTfjs(wasmThreads);
  const adapter = await adapterInfo();
  const order: { name: BackendName; reason: string }[] = [];
  if (forced) order.push({ name: forced, reason: `forced by ?backend=${forced}` });
  order.push({ name: 'wasm', reason: forced ? `${forced} unavailable: using WASM` : 'using WASM' });
  order.push({ name: 'cpu', reason: 'WASM unavailable: using plain JavaScript (slow)' });
  for (const o of order) {
    if (await useBackend(o.name)) return { backend: o.name, adapter, reason: withThreads(o.reason), wasmThreads: wasmThreadsInUse(), probes: [] };
  }
  throw new Error('no tfjs backend could start');
}

export type ProbedChoice =
  | { readonly ok: true; readonly report: BackendReport }
  | { readonly ok: false; readonly reason: string; readonly probes: readonly ProbeOutcome[] };

/**
 * Measures every usable backend on the job's model within PROBE_BUDGET_MS and makes the fastest the
 * active one (only the forced one with `?backend=`, which is still checked to train the model).
 * `failed`: backends that already failed this job after their probe (the worker loop's
 * non-finite rule); they are not measured again and count as failed in the decision and its reason.
 */
export async function chooseBackendForJob(
  job: JobDescriptor,
  forced: BackendName | null,
  budgetMs = PROBE_BUDGET_MS,
  wasmThreads?: number,
  failed: readonly BackendFailure[] = [],
): Promise<ProbedChoice> {
  initTfjs(wasmThreads);
  const adapter = await adapterInfo();
  const spec = { loss: job.loss, fromLogits: job.fromLogits, data: job.data };
  const options = { batchSize: Math.min(job.batchSize, 32), budgetMs, useBackend };
  const excluded = new Set(failed.map((f) => f.backend));
  const failedOutcomes: ProbeOutcome[] = failed.map((f) => ({
    backend: f.backend,
    software: f.backend === 'webgpu' && (adapter?.isFallbackAdapter ?? false),
    status: 'failed',
    samplesPerSec: 0,
    warmupMs: 0,
    steps: 0,
    error: f.error,
  }));
  let probes = [...(await probeBackends(probePlan(adapter, forced).filter((c) => !excluded.has(c.backend)), job.modelTopology, spec, options)), ...failedOutcomes];
  let decision = decideBackend(probes);
  let reason = `forced by ?backend=${forced}`;
  if (forced && !decision.ok) {
    // The forced backend cannot train this model here: fall back to measuring the others.
    const others = probePlan(adapter, null).filter((c) => c.backend !== forced && !excluded.has(c.backend));
    const rest = await probeBackends(others, job.modelTopology, spec, options);
    probes = [...probes, ...rest];
    const fallback = decideBackend(rest);
    reason = `${forced} cannot train this model here (${probes[0]?.error ?? 'failed'}); ${fallback.reason}`;
    decision = fallback.ok ? fallback : { ok: false, reason: decideBackend(probes).reason };
  } else if (decision.ok) {
    reason = forced ? reason : decision.reason;
  }
  if (!decision.ok) return { ok: false, reason: decision.reason, probes };
  if (!(await useBackend(decision.backend))) return { ok: false, reason: `${decision.backend} stopped working after its probe`, probes };
  return { ok: true, report: { backend: decision.backend, adapter, reason: withThreads(reason), wasmThreads: wasmThreadsInUse(), probes } };
}

/** Says how many threads WASM really runs on, only when it is the active backend and uses more than one. */
function withThreads(reason: string): string {
  const n = wasmThreadsInUse();
  return n > 1 ? `${reason} (WASM on ${n} threads)` : reason;
}

/** The figures the coordinator gets in the hello (capabilities.probes). */
export function probeResults(probes: readonly ProbeOutcome[]): ProbeResult[] {
  return probes.map((p) => ({ backend: p.backend, samplesPerSec: Number.isFinite(p.samplesPerSec) ? p.samplesPerSec : 0, status: p.status, software: p.software }));
}
