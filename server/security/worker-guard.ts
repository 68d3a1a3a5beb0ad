// The transport's security decisions about workers, in one place the socket handlers call with a
// line each: which id a hello gets (server-issued, signed), whether a lease may be granted (lease
// allowance, quarantine), and the address each worker is counted under. Owns the worker -> address
// map (bounded) and nothing durable.

import { ErrorCode, fail, type Failure } from '../../shared/protocol/errors.ts';
import type { WorkerId } from '../leases/lease-manager.ts';
import type { JobRegistry } from '../jobs/registry.ts';
import type { Clock } from '../../shared/clock.ts';
import type { GradientPush, LeaseAck, PushAck } from '../../shared/protocol/messages.ts';
import { WorkerCredentials } from './credentials.ts';

const MAX_ADDRESSES_KEPT = 50_000;

/** What the handlers ask of it (socket-handlers.ts); absent, the transport behaves as before. */
export interface WorkerGate {
  /** The id and credential this hello gets: the claimed id only with its valid credential and not in use. */
  identify(claimed: string | undefined, credential: string | undefined, inUse: (id: string) => boolean, address: string): { workerId: WorkerId; credential: string | undefined; verified: boolean };
  /** Why no lease may be granted to this worker now, or null. */
  leaseRefusal(workerId: WorkerId): Failure | null;
  /** Why this worker's pushes are no longer taken (quarantined), or null. */
  pushRefusal?(workerId: WorkerId): Failure | null;
  /** A spot-check replica lease to hand out instead of a normal one, or null (server/validation). */
  replicaLease?(workerId: WorkerId, jobId: string): LeaseAck | null;
  /** The answer to a push of a replica lease; null for a normal lease (it goes to the job). */
  takePush?(workerId: WorkerId, msg: GradientPush): PushAck | null;
  /** True when this lease's push must be seen alone (a spot check compares its gradient), never inside a combined update. */
  wantsGradient?(leaseId: string): boolean;
}

/** What the guard needs of the spot checker (server/validation/spot-checker.ts). */
export interface SpotCheckView extends QuarantineView {
  replicaLease(workerId: WorkerId, jobId: string): LeaseAck | null;
  takePush(workerId: WorkerId, msg: GradientPush): PushAck | null;
  wantsGradient?(leaseId: string): boolean;
}

export interface QuarantineView {
  /** The reason when this worker is quarantined (spot checks found it wrong too often). */
  quarantineReason(workerId: WorkerId): string | null;
}

export class WorkerGuard implements WorkerGate {
  private readonly addresses = new Map<string, string>();
  quarantine: QuarantineView | null = null;
  spotChecks: SpotCheckView | null = null;

  constructor(
    private readonly credentials: WorkerCredentials | null,
    private readonly registry: JobRegistry,
    private readonly clock: Clock,
    private readonly maxLeasesPerWorker: number,
  ) {}

  identify(claimed: string | undefined, credential: string | undefined, inUse: (id: string) => boolean, address: string): { workerId: WorkerId; credential: string | undefined; verified: boolean } {
    let id: string;
    let verified = false;
    if (!this.credentials) {
      // No secret (tests without a data folder): the old rule, the worker's own id unless in use.
      id = claimed && !inUse(claimed) ? claimed : WorkerCredentials.newId();
    } else if (claimed && this.credentials.verify(claimed, credential) && !inUse(claimed)) {
      id = claimed;
      verified = true;
    } else {
      id = WorkerCredentials.newId();
    }
    this.addresses.delete(id);
    this.addresses.set(id, address);
    while (this.addresses.size > MAX_ADDRESSES_KEPT) this.addresses.delete(this.addresses.keys().next().value!);
    const issued = this.credentials ? (verified ? credential : this.credentials.issue(id, this.clock.now())) : undefined;
    return { workerId: id as WorkerId, credential: issued, verified };
  }

  /**
   * Whether this worker's id is credential-backed: issued by this coordinator (or the cluster) with a
   * credential, or claimed with a valid one. False without a secret (ids the clients chose) and for
   * ids not seen (or no longer remembered) here.
   */
  verifiedIdentity(workerId: WorkerId): boolean {
    return this.credentials !== null && this.addresses.has(workerId);
  }

  /** The address a worker was last seen at (its own id when unknown): distinct-failure counting. */
  addressOf(workerId: WorkerId): string {
    return this.addresses.get(workerId) ?? workerId;
  }

  replicaLease(workerId: WorkerId, jobId: string): LeaseAck | null {
    if (this.registry.get(jobId)?.status !== 'running') return null;
    return this.spotChecks?.replicaLease(workerId, jobId) ?? null;
  }

  takePush(workerId: WorkerId, msg: GradientPush): PushAck | null {
    return this.spotChecks?.takePush(workerId, msg) ?? null;
  }

  wantsGradient(leaseId: string): boolean {
    return this.spotChecks?.wantsGradient?.(leaseId) ?? false;
  }

  /** A quarantined worker's results are not taken either (it may still hold a lease or a prefetched one). */
  pushRefusal(workerId: WorkerId): Failure | null {
    const why = this.quarantine?.quarantineReason(workerId);
    return why ? fail(ErrorCode.Quarantined, `this worker's results are no longer accepted: ${why}`) : null;
  }

  leaseRefusal(workerId: WorkerId): Failure | null {
    const why = this.quarantine?.quarantineReason(workerId);
    if (why) return fail(ErrorCode.Quarantined, `this worker gets no more work: ${why}`);
    let held = 0;
    for (const job of this.registry.all()) held += job.leasesHeldBy(workerId);
    if (held >= this.maxLeasesPerWorker) {
      return fail(ErrorCode.TooManyLeases, `this worker already holds ${held} lease(s) (at most ${this.maxLeasesPerWorker}): push or release one first`, 500);
    }
    return null;
  }
}
