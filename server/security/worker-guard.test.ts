// The guard's refusals for a quarantined worker: no lease, and no push either (a lease it still
// holds, or a prefetched one, must not bring its results back into a buffer).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../shared/clock.ts';
import { ErrorCode } from '../../shared/protocol/errors.ts';
import type { JobRegistry } from '../jobs/registry.ts';
import type { WorkerId } from '../leases/lease-manager.ts';
import { WorkerGuard } from './worker-guard.ts';

test('a quarantined worker is refused leases and pushes with WORKER_QUARANTINED and the reason; others are not', () => {
  const registry = { all: () => [] } as unknown as JobRegistry;
  const guard = new WorkerGuard(null, registry, new FakeClock(), 2);
  const bad = 'w-bad' as WorkerId;
  const good = 'w-good' as WorkerId;
  assert.equal(guard.pushRefusal(bad), null, 'no spot checker: nothing refused');
  guard.quarantine = { quarantineReason: (w) => (w === bad ? 'spot checks found 2 of its results wrong' : null) };
  const push = guard.pushRefusal(bad);
  assert.ok(push && push.code === ErrorCode.Quarantined && push.message.includes('spot checks found 2 of its results wrong'));
  assert.equal(guard.leaseRefusal(bad)?.code, ErrorCode.Quarantined);
  assert.equal(guard.pushRefusal(good), null);
  assert.equal(guard.leaseRefusal(good), null);
});
