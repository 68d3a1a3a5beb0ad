// Backend choice by measurement, the pure part: which backends a worker probes and in what order,
// how the start-up time budget is split between them, and which one it keeps given the figures.
// No tfjs and no clocks here; shared/training/probe.ts measures, the tab's Web Worker applies.

import type { AdapterInfo, BackendName } from '../protocol/messages.ts';

/** Whole start-up probe budget: every backend's warm-up and measured steps together. */
export const PROBE_BUDGET_MS = 2000;
/** No backend is given less than this: one warm-up and one measured step of a small model. */
export const MIN_SLICE_MS = 250;
/** A real GPU pays shader compilation in its first step (0.3-1.5 s): it gets at least this much. */
export const GPU_SLICE_MS = 1000;
/**
 * A software WebGPU adapter (SwiftShader) runs on the same CPU cores as WASM and its probe leaves
 * shader compilation running behind it, so it must beat the best other backend by this factor.
 */
export const SOFTWARE_GPU_MARGIN = 1.2;

export type ProbeStatus = 'ok' | 'timeout' | 'failed';

export interface ProbeOutcome {
  readonly backend: BackendName;
  /** True for WebGPU on a fallback (software) adapter. */
  readonly software: boolean;
  /**
   * ok: samples/s measured after one warm-up step. timeout: no step finished within the backend's
   * slice; samplesPerSec is then one batch over the time waited, what it delivered within the
   * budget (warm-up included), not its steady state. failed: it cannot train this model here (a
   * missing kernel, an exception, non-finite gradients on synthetic data).
   */
  readonly status: ProbeStatus;
  readonly samplesPerSec: number;
  readonly warmupMs: number;
  readonly steps: number;
  readonly error?: string | undefined;
}

export interface Candidate {
  readonly backend: BackendName;
  readonly software: boolean;
}

/**
 * The backends to probe, fastest-expected first so a slow one cannot starve it of budget: WebGPU
 * on a real adapter, WASM, CPU, and WebGPU on a software adapter last. `?backend=` probes only
 * that one (the probe then only checks it can train the model).
 */
export function probePlan(adapter: AdapterInfo | null, forced: BackendName | null): Candidate[] {
  const software = adapter?.isFallbackAdapter ?? false;
  if (forced) return [{ backend: forced, software: forced === 'webgpu' && software }];
  const plan: Candidate[] = [];
  if (adapter && !software) plan.push({ backend: 'webgpu', software: false });
  plan.push({ backend: 'wasm', software: false }, { backend: 'cpu', software: false });
  if (adapter && software) plan.push({ backend: 'webgpu', software: true });
  return plan;
}

/** Time for the next candidate: an even share of what is left, a real GPU at least GPU_SLICE_MS. */
export function sliceMs(remainingMs: number, candidatesLeft: number, candidate: Candidate): number {
  const share = Math.max(MIN_SLICE_MS, remainingMs / Math.max(1, candidatesLeft));
  return candidate.backend === 'webgpu' && !candidate.software ? Math.max(GPU_SLICE_MS, share) : share;
}

export type BackendDecision =
  | { readonly ok: true; readonly backend: BackendName; readonly software: boolean; readonly reason: string }
  | { readonly ok: false; readonly reason: string };

export function backendLabel(o: Pick<ProbeOutcome, 'backend' | 'software'>): string {
  return o.backend === 'webgpu' ? (o.software ? 'WebGPU (software)' : 'WebGPU') : o.backend.toUpperCase();
}

function figure(o: ProbeOutcome): string {
  const label = backendLabel(o);
  switch (o.status) {
    case 'ok':
      return `${label} ${Math.round(o.samplesPerSec).toLocaleString('en-US')}`;
    case 'timeout':
      return `${label} <${Math.max(1, Math.round(o.samplesPerSec)).toLocaleString('en-US')} within the budget (no step finished)`;
    case 'failed':
      return `${label} failed (${o.error ?? 'unknown error'})`;
  }
}

/**
 * Keeps the fastest backend that trained the model: the highest measured samples/s, WebGPU on a
 * software adapter only when it beats every other by SOFTWARE_GPU_MARGIN, ties to plan order.
 * When nothing finished a step in time but something did not fail either, the first such backend
 * in plan order is kept (a slow device still helps). When everything failed, the model cannot be
 * trained on this device.
 */
export function decideBackend(outcomes: readonly ProbeOutcome[]): BackendDecision {
  const summary = outcomes.map(figure).join(', ');
  const ok = outcomes.filter((o) => o.status === 'ok' && o.samplesPerSec > 0);
  if (ok.length > 0) {
    const effective = (o: ProbeOutcome): number => (o.software ? o.samplesPerSec / SOFTWARE_GPU_MARGIN : o.samplesPerSec);
    let best = ok[0]!;
    for (const o of ok.slice(1)) if (effective(o) > effective(best)) best = o;
    return { ok: true, backend: best.backend, software: best.software, reason: `${backendLabel(best)} measured fastest (samples/s: ${summary})` };
  }
  const slow = outcomes.find((o) => o.status === 'timeout');
  if (slow) return { ok: true, backend: slow.backend, software: slow.software, reason: `no backend finished a step within the probe budget; using ${backendLabel(slow)} (${summary})` };
  return { ok: false, reason: outcomes.length === 0 ? 'no backend to try' : `no backend can train this model here: ${summary}` };
}
