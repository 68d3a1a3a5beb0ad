import { test } from 'node:test';
import assert from 'node:assert/strict';
import { controlRefusal } from './job-controls.ts';

test('pause/resume/cancel apply only where they make sense; otherwise a reason', () => {
  assert.equal(controlRefusal('pause', 'running'), null);
  assert.equal(controlRefusal('resume', 'paused'), null);
  assert.equal(controlRefusal('cancel', 'running'), null);
  assert.equal(controlRefusal('cancel', 'paused'), null);
  assert.equal(controlRefusal('pause', 'finished'), 'the job is finished; only a running job can be paused');
  assert.equal(controlRefusal('pause', 'paused'), 'the job is already paused');
  assert.equal(controlRefusal('resume', 'running'), 'the job is already running');
  assert.equal(controlRefusal('resume', 'cancelled'), 'the job is cancelled; only a paused job can be resumed');
  assert.equal(controlRefusal('cancel', 'finished'), 'the job is already finished; only a running or paused job can be cancelled');
  assert.equal(controlRefusal('cancel', 'cancelled'), 'the job is already cancelled; only a running or paused job can be cancelled');
});
