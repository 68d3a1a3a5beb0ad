// Error codes a worker or admin can get back. Append-only: a code, once shipped, keeps its meaning.
// Transient codes mean "try again later"; permanent ones mean "this request will never succeed".

export const ErrorCode = {
  BadRequest: 'BAD_REQUEST',
  ProtocolMismatch: 'PROTOCOL_MISMATCH',
  NotRegistered: 'NOT_REGISTERED',
  Unauthorized: 'UNAUTHORIZED',
  UnknownJob: 'UNKNOWN_JOB',
  NoWork: 'NO_WORK',
  JobPaused: 'JOB_PAUSED',
  JobFinished: 'JOB_FINISHED',
  UnknownLease: 'UNKNOWN_LEASE',
  LeaseNotYours: 'LEASE_NOT_YOURS',
  ShardAlreadyDone: 'SHARD_ALREADY_DONE',
  Stale: 'STALE_GRADIENT',
  FutureVersion: 'FUTURE_VERSION',
  SpecMismatch: 'GRADIENT_SPEC_MISMATCH',
  NonFinite: 'GRADIENT_NON_FINITE',
  TooLarge: 'GRADIENT_TOO_LARGE',
  Internal: 'INTERNAL',
  Unsupported: 'MODEL_UNSUPPORTED_ON_DEVICE',
  /** The stop condition was met; the final version is being evaluated. Retry shortly. */
  Finalizing: 'JOB_FINALIZING',
  /** An admin control that does not apply in the job's status (pausing a finished job). */
  WrongStatus: 'WRONG_JOB_STATUS',
  /**
   * To a worker that follows the scheduler (LeaseRequest.movable): another job needs it more.
   * It drops its model and asks job:get (no job id), which names the job it is assigned.
   */
  JobReassigned: 'JOB_REASSIGNED',
  /** Too many requests from this connection or address: slow down (retryAfterMs says when). */
  RateLimited: 'RATE_LIMITED',
  /** The worker already holds its allowance of leases (one, plus one prefetched): push or release first. */
  TooManyLeases: 'TOO_MANY_LEASES',
  /** This connection has too much unanswered or unread work queued: read the answers first. */
  Backpressure: 'BACKPRESSURE',
  /** Spot checks found this worker's results wrong too often; it gets no more work (the message says why). */
  Quarantined: 'WORKER_QUARANTINED',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Codes after which the same request may succeed later (the worker backs off and retries). */
export const TRANSIENT_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  ErrorCode.NoWork,
  ErrorCode.JobPaused,
  ErrorCode.Internal,
  ErrorCode.Finalizing,
  ErrorCode.RateLimited,
  ErrorCode.TooManyLeases,
  ErrorCode.Backpressure,
]);

export interface Failure {
  readonly ok: false;
  readonly code: ErrorCode;
  readonly message: string;
  /** For transient codes: when to ask again. */
  readonly retryAfterMs?: number;
}

export const fail = (code: ErrorCode, message: string, retryAfterMs?: number): Failure =>
  retryAfterMs === undefined ? { ok: false, code, message } : { ok: false, code, message, retryAfterMs };
