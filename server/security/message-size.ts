// How big a worker's largest message can legitimately be: its gradient (float32, every trainable
// weight), for the largest job this coordinator runs. Pure over the jobs' descriptors.

import { sizeOf } from '../../shared/codec/tensor-codec.ts';
import type { JobDescriptor } from '../../shared/protocol/messages.ts';

export function largestGradientBytes(jobs: readonly { descriptor(): JobDescriptor }[]): number {
  let max = 0;
  for (const j of jobs) max = Math.max(max, j.descriptor().trainableSpecs.reduce((n, t) => n + sizeOf(t.shape) * 4, 0));
  return max;
}
