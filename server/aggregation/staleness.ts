// Staleness rule: how much a gradient computed on an older version still counts.
// tau = current version - base version. Pure; the aggregator multiplies the GRADIENT by scale(tau)
// before the optimizer sees it (scaling the step instead leaves the full gradient in the moments).

export const STALENESS_RULES = ['inverse', 'inverse-sqrt', 'constant'] as const;
export type StalenessRuleName = (typeof STALENESS_RULES)[number];

export interface StalenessPolicy {
  readonly rule: StalenessRuleName;
  /** Gradients with tau above this are refused. */
  readonly maxStaleness: number;
}

export type StalenessDecision =
  | { accept: true; tau: number; scale: number }
  | { accept: false; tau: number; reason: 'stale' | 'future' };

export function judgeStaleness(policy: StalenessPolicy, currentVersion: number, baseVersion: number): StalenessDecision {
  const tau = currentVersion - baseVersion;
  if (tau < 0) return { accept: false, tau, reason: 'future' };
  if (tau > policy.maxStaleness) return { accept: false, tau, reason: 'stale' };
  return { accept: true, tau, scale: stalenessScale(policy.rule, tau) };
}

/** Gradient multiplier for staleness tau: 1/(1+tau) (Zhang et al. 2016), 1/sqrt(1+tau), or 1. */
export function stalenessScale(rule: StalenessRuleName, tau: number): number {
  switch (rule) {
    case 'inverse':
      return 1 / (1 + tau);
    case 'inverse-sqrt':
      return 1 / Math.sqrt(1 + tau);
    case 'constant':
      return 1;
  }
}
