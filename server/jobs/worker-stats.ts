// Per-worker statistics for the dashboard: leases granted and done, gradients accepted/refused,
// staleness sum, samples, recent throughput, connected/last seen. Fed by the transport (it sees
// every hello, lease, push and disconnect); O(1) per event, rows built only when asked.

import type { Clock } from '../../shared/clock.ts';
import type { GradientPush, LeaseAck, PushAck, WorkerCapabilities } from '../../shared/protocol/messages.ts';
import type { WorkerRow, WorkersChange } from '../../shared/protocol/admin.ts';

interface Rec {
  workerId: string;
  jobId: string | null;
  capabilities: WorkerCapabilities;
  leasesGranted: number;
  leasesDone: number;
  accepted: number;
  refused: number;
  stalenessSum: number;
  samples: number;
  connectedAt: number;
  lastSeenAt: number;
  /** Recent pushes for samples/s: ring of (at, samples). */
  recent: { at: number; samples: number }[];
  /** Bumped on every change; deltas carry the rows whose seq is above the reader's cursor. */
  seq: number;
}

/** How many pushes samples/s looks back over, and how far back in time at most. */
const RECENT_PUSHES = 20;
const RECENT_WINDOW_MS = 30_000;
/** Removals remembered for deltas; a reader further behind gets the full table. */
const MAX_REMOVALS = 10_000;

/** What the worker computes on: the GPU adapter for WebGPU, the CPU path otherwise. */
export function adapterText(c: WorkerCapabilities): string | null {
  if (c.backend === 'wasm') return c.wasmThreads ? 'CPU (WASM SIMD, threads)' : 'CPU (WASM SIMD)';
  if (c.backend === 'cpu') return 'CPU (JavaScript)';
  const a = c.adapter;
  if (!a) return null;
  return `${a.vendor} ${a.architecture}`.trim() + (a.isFallbackAdapter ? ' (software)' : '');
}

export class WorkerStatsBook {
  private readonly recs = new Map<string, Rec>();
  private removals: { workerId: string; jobId: string | null; seq: number }[] = [];
  /** Highest seq of a removal forgotten (trimmed); readers at or below it get the full table. */
  private forgottenSeq = 0;
  private seq = 0;

  constructor(private readonly clock: Clock) {}

  /** The newest change number; a reader stores it as its cursor. */
  get cursor(): number {
    return this.seq;
  }

  get size(): number {
    return this.recs.size;
  }

  hello(workerId: string, capabilities: WorkerCapabilities, connectedAt: number): void {
    const r = this.recs.get(workerId);
    if (r) {
      r.capabilities = capabilities;
      this.touch(r);
      return;
    }
    this.recs.set(workerId, {
      workerId,
      jobId: null,
      capabilities,
      leasesGranted: 0,
      leasesDone: 0,
      accepted: 0,
      refused: 0,
      stalenessSum: 0,
      samples: 0,
      connectedAt,
      lastSeenAt: this.clock.now(),
      recent: [],
      seq: ++this.seq,
    });
  }

  joined(workerId: string, jobId: string): void {
    const r = this.recs.get(workerId);
    if (!r || r.jobId === jobId) return;
    if (r.jobId !== null) this.noteRemoval(workerId, r.jobId);
    r.jobId = jobId;
    this.touch(r);
  }

  leased(workerId: string, _jobId: string, ack: LeaseAck): void {
    const r = this.recs.get(workerId);
    if (!r) return;
    if (ack.ok) r.leasesGranted++;
    this.touch(r);
  }

  pushed(workerId: string, _jobId: string, push: GradientPush, ack: PushAck): void {
    const r = this.recs.get(workerId);
    if (!r) return;
    const now = this.clock.now();
    r.leasesDone++;
    if (ack.ok) {
      if (ack.status !== 'duplicate') {
        r.accepted++;
        r.stalenessSum += ack.staleness;
        r.samples += push.numSamples;
      }
    } else {
      r.refused++;
    }
    r.recent.push({ at: now, samples: push.numSamples });
    if (r.recent.length > RECENT_PUSHES) r.recent.shift();
    this.touch(r, now);
  }

  released(workerId: string): void {
    const r = this.recs.get(workerId);
    if (r) this.touch(r);
  }

  left(workerId: string): void {
    const r = this.recs.get(workerId);
    if (!r) return;
    this.recs.delete(workerId);
    this.noteRemoval(workerId, r.jobId);
  }

  row(workerId: string): WorkerRow | undefined {
    const r = this.recs.get(workerId);
    return r && this.toRow(r, this.clock.now());
  }

  /** Rows of the workers on `jobId` (every worker when undefined). */
  rows(jobId?: string): WorkerRow[] {
    const now = this.clock.now();
    const out: WorkerRow[] = [];
    for (const r of this.recs.values()) if (jobId === undefined || r.jobId === jobId) out.push(this.toRow(r, now));
    return out;
  }

  /** Rows of `jobId` changed after `since`, and workers gone from it since then. */
  changes(jobId: string, since: number): WorkersChange {
    if (since < this.forgottenSeq) {
      return { full: true, rows: this.rows(jobId), removed: [] };
    }
    const now = this.clock.now();
    const rows: WorkerRow[] = [];
    for (const r of this.recs.values()) if (r.jobId === jobId && r.seq > since) rows.push(this.toRow(r, now));
    const removed: string[] = [];
    // Removals are in seq order: scan back from the newest.
    for (let i = this.removals.length - 1; i >= 0; i--) {
      const x = this.removals[i]!;
      if (x.seq <= since) break;
      if (x.jobId === jobId && this.recs.get(x.workerId)?.jobId !== jobId) removed.push(x.workerId);
    }
    return { full: false, rows, removed };
  }

  private toRow(r: Rec, now: number): WorkerRow {
    const probes = r.capabilities.probes ?? [];
    const best = probes.reduce<number | null>((m, p) => (m === null || p.samplesPerSec > m ? p.samplesPerSec : m), null);
    return {
      workerId: r.workerId,
      jobId: r.jobId,
      runtime: r.capabilities.runtime,
      backend: r.capabilities.backend,
      adapter: adapterText(r.capabilities),
      probeSamplesPerSec: best,
      samplesPerSec: samplesPerSec(r.recent, now),
      leasesGranted: r.leasesGranted,
      leasesDone: r.leasesDone,
      accepted: r.accepted,
      refused: r.refused,
      meanStaleness: r.accepted > 0 ? r.stalenessSum / r.accepted : null,
      samples: r.samples,
      connectedAt: r.connectedAt,
      lastSeenAt: r.lastSeenAt,
    };
  }

  private touch(r: Rec, now = this.clock.now()): void {
    r.lastSeenAt = now;
    r.seq = ++this.seq;
  }

  private noteRemoval(workerId: string, jobId: string | null): void {
    this.removals.push({ workerId, jobId, seq: ++this.seq });
    if (this.removals.length > MAX_REMOVALS) {
      const dropped = this.removals.splice(0, this.removals.length - MAX_REMOVALS);
      this.forgottenSeq = dropped.at(-1)!.seq;
    }
  }
}

/** Samples/s over the pushes in the window: samples after the first / time since the first. */
export function samplesPerSec(recent: readonly { at: number; samples: number }[], now: number): number {
  const inWindow = recent.filter((p) => p.at >= now - RECENT_WINDOW_MS);
  if (inWindow.length < 2) return 0;
  const first = inWindow[0]!;
  const span = Math.max(1000, now - first.at);
  let total = 0;
  for (let i = 1; i < inWindow.length; i++) total += inWindow[i]!.samples;
  return (total * 1000) / span;
}
