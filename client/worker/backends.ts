// tfjs backends in the tab: loads WebGPU, WASM and CPU with the Flock kernels, reads the WebGPU
// adapter, and picks the backend for a job by measuring each usable one on the job's model
// (shared/training/backend-choice.ts decides). `?backend=` forces one. Runs in the Web Worker.

import { tf } from '../../shared/training/tf.ts';
import '@tensorflow/tfjs-backend-webgpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import type { AdapterInfo, BackendName, JobDescriptor, ProbeResult } from '../../shared/protocol/messages.ts';
import type { BackendReport } from './messages.ts';
import { registerFlockKernels } from '../../shared/kernels/index.ts';
import { decideBackend, PROBE_BUDGET_MS, probePlan, type ProbeOutcome } from '../../shared/training/backend-choice.ts';
import { probeBackends } from '../../shared/training/probe.ts';

let initialised = false;

/** Once per realm: Flock kernels, the .wasm location, and SIMD-only WASM. */
export function initTfjs(): void {
  if (initialised) return;
  initialised = true;
  // Gradient kernels tfjs-backend-wasm lacks (Conv2DBackpropFilter...) and fixes (MaxPoolGrad).
  registerFlockKernels();
  setWasmPaths('/wasm/');
  // tfjs's threaded WASM build starts its pthreads from blob URLs, which fail inside a module Web
  // Worker ("e is not defined"); and threads measured no gain on 2-core machines. SIMD only.
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
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
    if (!(await tf.setBackend(name)) || tf.getBackend() !== name) return false;
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
export async function startWithoutProbe(forced: BackendName | null): Promise<BackendReport> {
  initTfjs();
  const adapter = await adapterInfo();
  const order: { name: BackendName; reason: string }[] = [];
  if (forced) order.push({ name: forced, reason: `forced by ?backend=${forced}` });
  order.push({ name: 'wasm', reason: forced ? `${forced} unavailable: using WASM` : 'using WASM' });
  order.push({ name: 'cpu', reason: 'WASM unavailable: using plain JavaScript (slow)' });
  for (const o of order) {
    if (await useBackend(o.name)) return { backend: o.name, adapter, reason: o.reason, wasmThreads: false, probes: [] };
  }
  throw new Error('no tfjs backend could start');
}

export type ProbedChoice =
  | { readonly ok: true; readonly report: BackendReport }
  | { readonly ok: false; readonly reason: string; readonly probes: readonly ProbeOutcome[] };

/**
 * Measures every usable backend on the job's model within PROBE_BUDGET_MS and makes the fastest the
 * active one (only the forced one with `?backend=`, which is still checked to train the model).
 */
export async function chooseBackendForJob(job: JobDescriptor, forced: BackendName | null, budgetMs = PROBE_BUDGET_MS): Promise<ProbedChoice> {
  initTfjs();
  const adapter = await adapterInfo();
  const spec = { loss: job.loss, numClasses: job.numClasses, featureShape: job.featureShape, featureScale: job.featureScale };
  const options = { batchSize: Math.min(job.batchSize, 32), budgetMs, useBackend };
  let probes = await probeBackends(probePlan(adapter, forced), job.modelTopology, spec, options);
  let decision = decideBackend(probes);
  let reason = `forced by ?backend=${forced}`;
  if (forced && !decision.ok) {
    // The forced backend cannot train this model here: fall back to measuring the others.
    const others = probePlan(adapter, null).filter((c) => c.backend !== forced);
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
  return { ok: true, report: { backend: decision.backend, adapter, reason, wasmThreads: false, probes } };
}

/** The figures the coordinator gets in the hello (capabilities.probes). */
export function probeResults(probes: readonly ProbeOutcome[]): ProbeResult[] {
  return probes.map((p) => ({ backend: p.backend, samplesPerSec: Number.isFinite(p.samplesPerSec) ? p.samplesPerSec : 0, status: p.status, software: p.software }));
}
