// The dashboard's view of a job: its summary plus the settings an admin can change while it runs.
// Pure reads of a JobRuntime (cheap counters only), shared by the admin socket feed and admin API.

import type { JobView } from '../../shared/protocol/admin.ts';
import type { JobRuntime } from './job-runtime.ts';

export function jobView(job: JobRuntime): JobView {
  const s = job.summary();
  return {
    ...s,
    activeMs: job.activeElapsedMs,
    learningRate: job.config.optimizer.learningRate,
    maxStaleness: job.config.staleness.maxStaleness,
    stalenessRule: job.config.staleness.rule,
    optimizer: job.config.optimizer.kind,
    weight: job.config.weight ?? 1,
    aggregation: s.aggregation,
  };
}
