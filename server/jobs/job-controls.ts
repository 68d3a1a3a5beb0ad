// Which admin control makes sense in which job status: a pure decision the HTTP API applies
// before calling the job (refused controls answer 409 with the reason and change nothing).

import type { JobStatus } from '../../shared/protocol/messages.ts';

export const JOB_CONTROLS = ['pause', 'resume', 'cancel'] as const;
export type JobControl = (typeof JOB_CONTROLS)[number];

/** Null when `action` applies to a job in `status`; otherwise the one-line reason it does not. */
export function controlRefusal(action: JobControl, status: JobStatus): string | null {
  switch (action) {
    case 'pause':
      if (status === 'running') return null;
      return status === 'paused' ? 'the job is already paused' : `the job is ${status}; only a running job can be paused`;
    case 'resume':
      if (status === 'paused') return null;
      return status === 'running' ? 'the job is already running' : `the job is ${status}; only a paused job can be resumed`;
    case 'cancel':
      if (status === 'running' || status === 'paused') return null;
      return `the job is already ${status}; only a running or paused job can be cancelled`;
  }
}
