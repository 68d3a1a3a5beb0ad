// A job's status machine: running <-> paused, -> finished | cancelled, and the time spent running
// (pauses excluded) for stop.maxMinutes. Owns status, createdAt, finishedAt and the active time.
// Pure transitions over a clock; the runtime makes them durable (checkpoint) before acknowledging.

import type { Clock } from '../../shared/clock.ts';
import type { JobStatus } from '../../shared/protocol/messages.ts';

export interface LifecycleSnapshot {
  status: JobStatus;
  createdAt: number;
  finishedAt: number | null;
  activeMs: number;
}

export class JobLifecycle {
  status: JobStatus;
  readonly createdAt: number;
  finishedAt: number | null;
  private activeMs: number;
  private activeSince: number | null;

  constructor(
    private readonly clock: Clock,
    snap: LifecycleSnapshot | null,
  ) {
    this.status = snap?.status ?? 'running';
    this.createdAt = snap?.createdAt ?? clock.now();
    this.finishedAt = snap?.finishedAt ?? null;
    this.activeMs = snap?.activeMs ?? 0;
    this.activeSince = this.status === 'running' ? clock.now() : null;
  }

  get ended(): boolean {
    return this.status === 'finished' || this.status === 'cancelled';
  }

  /** Each returns false when the transition does not apply (nothing changes). */
  pause(): boolean {
    if (this.status !== 'running') return false;
    this.stopClock();
    this.status = 'paused';
    return true;
  }

  resume(): boolean {
    if (this.status !== 'paused') return false;
    this.status = 'running';
    this.activeSince = this.clock.now();
    return true;
  }

  cancel(): boolean {
    if (this.ended) return false;
    this.stopClock();
    this.status = 'cancelled';
    this.finishedAt = this.clock.now();
    return true;
  }

  finish(): void {
    this.stopClock();
    this.status = 'finished';
    this.finishedAt = this.clock.now();
  }

  /** Time spent running so far, pauses excluded (ms). */
  elapsedActiveMs(): number {
    return this.activeMs + (this.activeSince === null ? 0 : this.clock.now() - this.activeSince);
  }

  snapshot(): LifecycleSnapshot {
    return { status: this.status, createdAt: this.createdAt, finishedAt: this.finishedAt, activeMs: this.elapsedActiveMs() };
  }

  private stopClock(): void {
    this.activeMs = this.elapsedActiveMs();
    this.activeSince = null;
  }
}
