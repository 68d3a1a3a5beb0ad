// Lease deadlines adapted to each worker's measured speed, so a slow CPU tab gets a longer deadline
// (not endless expiries) and a fast one that vanishes costs little. Pure functions.

export interface DeadlinePolicy {
  /** Deadline for a worker with no measurement yet (the job's leaseTimeoutMs). */
  readonly defaultMs: number;
  /** Never shorter than this (GC pauses, a busy tab). */
  readonly minMs: number;
  /** Never longer than this. */
  readonly maxMs: number;
  /** Deadline = slack x expected time. */
  readonly slack: number;
}

export function policyFor(leaseTimeoutMs: number): DeadlinePolicy {
  return { defaultMs: leaseTimeoutMs, minMs: Math.min(leaseTimeoutMs, 5_000), maxMs: leaseTimeoutMs * 10, slack: 4 };
}

/** Milliseconds a lease of `samples` examples may take for a worker measured at `msPerSample`. */
export function leaseDeadlineMs(policy: DeadlinePolicy, msPerSample: number | null | undefined, samples: number): number {
  if (msPerSample == null || !Number.isFinite(msPerSample)) return policy.defaultMs;
  return Math.round(Math.min(policy.maxMs, Math.max(policy.minMs, policy.slack * msPerSample * samples)));
}

/** Exponentially weighted moving average of ms per example (weight 0.3 on the newest lease). */
export function updateSpeed(previous: number | null | undefined, elapsedMs: number, samples: number): number {
  const x = Math.max(0, elapsedMs) / Math.max(1, samples);
  return previous == null ? x : 0.7 * previous + 0.3 * x;
}
