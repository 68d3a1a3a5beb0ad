// Poison shards count distinct addresses: failures from many ids at one address (made up, or
// freshly issued by the coordinator) cannot set a shard aside; three addresses can.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../../shared/clock.ts';
import { LeaseManager, type WorkerId } from '../leases/lease-manager.ts';

function run(addressOf: (w: WorkerId) => string): boolean {
  let n = 0;
  const lm = new LeaseManager({ shardsPerEpoch: 1, maxEpochs: 1, clock: new FakeClock(), newId: () => `l${n++}`, maxShardFailures: 8, minFailingWorkers: 3, identityOf: addressOf });
  let quarantined = false;
  for (let i = 0; i < 12 && !quarantined; i++) {
    const lease = lm.grant(`w-fake-${i}` as WorkerId, 0, 1000);
    assert.ok(lease);
    lm.release(lease.id);
    quarantined ||= lm.recordFailure(lease).quarantined;
  }
  return quarantined;
}

test('12 failures from 12 ids at one address do not set the shard aside; from 3 addresses they do', () => {
  assert.equal(run(() => '6.6.6.6'), false);
  assert.equal(run((w) => `10.0.0.${Number(w.split('-')[2]) % 3}`), true);
});
