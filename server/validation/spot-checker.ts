// Spot-check validation: BOINC's adaptive replication adapted to floating point. Some leases are
// replicated: the same shard on the same weights version goes to a second worker of the same
// backend class at another address (or at the same one where FLOCK_SPOT_CHECK_SAME_ADDRESS allows
// it, same-address.ts); the two gradients must agree within the pair's tolerance
// (compare.ts, tolerances.ts). A new worker is checked every time until it has `trustAfter`
// consecutive validated results, then with probability 1/(n+1) for n validated results. A
// mismatch gets a third opinion; the worker the third disagrees with is at fault, loses its trust,
// and after `faultsToQuarantine` faults is quarantined with the reason. Credit counts validated
// work only. Owns: per-worker trust records, the leases chosen for checking, the pending checks
// and a few recent weight versions per job (all bounded). The push path is untouched: it hears
// about leases and applied pushes as a TransportObserver, and answers replica leases and pushes.
// Trust records are durable: restore() loads them from the StateStore (at start, and on election in
// a cluster) and every check that changes some writes them back in one batch, so a restart or a
// takeover neither forgets a quarantine nor starts trusted workers over.

import { ErrorCode, fail } from '../../shared/protocol/errors.ts';
import type { GradientPush, LeaseAck, PushAck, WeightsPayload, WorkerCapabilities } from '../../shared/protocol/messages.ts';
import { toBytes, type BinaryLike } from '../../shared/codec/tensor-codec.ts';
import type { WorkerId } from '../leases/lease-manager.ts';
import type { Clock } from '../../shared/clock.ts';
import { compareGradients, type Comparison } from './compare.ts';
import { backendClass, toleranceFor } from './tolerances.ts';
import { SAME_ADDRESS_OFF, sameAddressReplicaAllowed, type SameAddressReplicas } from './same-address.ts';
import type { StateStore, StoredTrust } from '../storage/state-store.ts';

export interface SpotCheckPolicy {
  /** Consecutive validated results before the check probability starts to fall (BOINC: 10). */
  readonly trustAfter: number;
  /** Faults (results a third opinion found wrong) after which a worker is quarantined. */
  readonly faultsToQuarantine: number;
  /** Checks waiting for a second or third opinion, at most (older ones are dropped). */
  readonly maxPending: number;
  /** A check not completed in this time is dropped (its result stays unvalidated). */
  readonly checkTtlMs: number;
  /** Deadline of a replica lease. */
  readonly replicaLeaseMs: number;
  /** Bytes the pending checks may pin (weights, shard, gradients; shared weights counted per check). */
  readonly maxPinnedBytes: number;
  /** Whether a replica may go to a worker at the first worker's address (FLOCK_SPOT_CHECK_SAME_ADDRESS). */
  readonly sameAddress: SameAddressReplicas;
}

export const DEFAULT_SPOT_CHECK_POLICY: SpotCheckPolicy = { trustAfter: 10, faultsToQuarantine: 2, maxPending: 64, checkTtlMs: 120_000, replicaLeaseMs: 30_000, maxPinnedBytes: 256 * 1024 * 1024, sameAddress: SAME_ADDRESS_OFF };

/** Where trust records are kept: the coordinator's StateStore. */
export type TrustStore = Pick<StateStore, 'putTrust' | 'listTrust'>;

/** Probability that a result of a worker with `validated` consecutive validated results is checked. */
export function checkProbability(validated: number, trustAfter: number): number {
  return validated < trustAfter ? 1 : 1 / (validated + 1);
}

export interface TrustRecord {
  /** Consecutive validated results (reset by a fault). */
  validated: number;
  totalValidated: number;
  faults: number;
  /** Samples of validated work: the only work credited. */
  creditSamples: number;
  /** Results checked and found wrong, and why (last few). */
  lastFault: string | null;
  quarantined: string | null;
}

interface Opinion {
  readonly workerId: WorkerId;
  readonly address: string;
  readonly backend: string;
  readonly grad: Float32Array;
}

/** A lease's shard and weights, kept to compare its result with a replica's. */
interface Held {
  readonly jobId: string;
  readonly epoch: number;
  readonly shard: number;
  readonly baseVersion: number;
  readonly numSamples: number;
  readonly x: BinaryLike;
  readonly y: BinaryLike;
  readonly weights: WeightsPayload;
}

interface Check extends Held {
  readonly id: number;
  readonly cls: string;
  readonly createdAt: number;
  readonly opinions: Opinion[];
  /** replica lease id -> holder */
  readonly assigned: Map<string, { workerId: WorkerId; deadlineAt: number }>;
  wanted: number;
  readonly bytes: number;
}

const MAX_HELD = 256;
const MAX_RECORDS = 100_000;
/** Recent weight versions kept per coordinator (a lease sent without weights is checked against these). */
const VERSIONS_KEPT = 8;
const REPLICA_PREFIX = 'spot-';

function floats(data: BinaryLike): Float32Array {
  const b = toBytes(data);
  const copy = new Uint8Array(b.byteLength - (b.byteLength % 4));
  copy.set(b.subarray(0, copy.byteLength));
  return new Float32Array(copy.buffer);
}

export class SpotChecker {
  private readonly records = new Map<string, TrustRecord>();
  private readonly backends = new Map<string, string>();
  private readonly held = new Map<string, Held>();
  private readonly checks = new Map<number, Check>();
  private readonly versions = new Map<string, WeightsPayload>();
  private nextId = 1;
  private pinnedBytes = 0;
  /** Where records are written (null: kept in memory only), and the ones changed since the last write. */
  private store: TrustStore | null = null;
  private readonly dirty = new Set<string>();
  /**
   * Counters: leases replicated (handed out as replicas), checks decided, and trust records a
   * refused write could not save (the store failed, e.g. a deposed cluster owner's fenced writes).
   */
  readonly counts = { replicaLeases: 0, agreed: 0, mismatches: 0, faults: 0, inconclusive: 0, expired: 0, unsaved: 0 };
  /** Every row of a job's shard, in lease order (the coordinator reads them from the job's data). */
  shardRows: ((jobId: string, epoch: number, shard: number) => { x: Uint8Array; y: Uint8Array } | null) | null = null;
  /** Told once when a worker is quarantined (the coordinator drops its buffered gradients). */
  onQuarantined: ((workerId: WorkerId, reason: string) => void) | null = null;
  /** Told when trust records could not be written (the coordinator logs it). */
  onUnsaved: ((err: Error, records: number) => void) | null = null;

  constructor(
    private readonly clock: Clock,
    private readonly addressOf: (workerId: WorkerId) => string,
    private readonly policy: SpotCheckPolicy = DEFAULT_SPOT_CHECK_POLICY,
    private readonly random: () => number = Math.random,
    /** Whether a worker's id was issued (or proven) with a credential: same-address replicas need it on both sides. */
    private readonly verifiedIdentity: (workerId: WorkerId) => boolean = () => false,
  ) {}

  /**
   * Replaces every trust record by the store's and writes each change to it from now on: at start,
   * and in a cluster on each election (the new owner reads what its predecessor wrote). Returns how
   * many records were loaded (quarantined ones first, then the most credited, MAX_RECORDS at most).
   */
  restore(store: TrustStore): number {
    this.store = store;
    this.records.clear();
    this.dirty.clear();
    const rows = store.listTrust().sort((a, b) => Number(b.quarantined !== null) - Number(a.quarantined !== null) || b.creditSamples - a.creditSamples).slice(0, MAX_RECORDS);
    for (const r of rows) {
      this.records.set(r.workerId, { validated: r.validated, totalValidated: r.totalValidated, faults: r.faults, creditSamples: r.creditSamples, lastFault: r.lastFault, quarantined: r.quarantined });
    }
    return rows.length;
  }

  /** Writes the records changed since the last write, in one batch (the store's group commit makes it durable). */
  private save(): void {
    if (!this.store || this.dirty.size === 0) return;
    const at = this.clock.now();
    const rows: StoredTrust[] = [];
    for (const id of this.dirty) {
      const r = this.records.get(id);
      if (r) rows.push({ workerId: id, ...r, updatedAt: at });
    }
    this.dirty.clear();
    try {
      this.store.putTrust(rows);
    } catch (err) {
      this.counts.unsaved += rows.length;
      this.onUnsaved?.(err as Error, rows.length);
    }
  }

  record(workerId: string): TrustRecord {
    let r = this.records.get(workerId);
    if (!r) {
      r = { validated: 0, totalValidated: 0, faults: 0, creditSamples: 0, lastFault: null, quarantined: null };
      this.records.set(workerId, r);
      // Forget the least recently created records of workers that never validated anything.
      if (this.records.size > MAX_RECORDS) {
        for (const [k, v] of this.records) {
          if (k !== workerId && v.totalValidated === 0 && v.faults === 0) {
            this.records.delete(k);
            break;
          }
        }
      }
    }
    return r;
  }

  quarantineReason(workerId: WorkerId): string | null {
    return this.records.get(workerId)?.quarantined ?? null;
  }

  /** Credit (validated work) per worker, for the volunteer page and the dashboard. */
  trust(workerId: string): Readonly<TrustRecord> | null {
    return this.records.get(workerId) ?? null;
  }

  /** Workers with validated work or faults, most credited first (the dashboard). */
  rows(limit = 200): ({ workerId: string } & TrustRecord)[] {
    return [...this.records.entries()]
      .filter(([, r]) => r.totalValidated > 0 || r.faults > 0)
      .map(([workerId, r]) => ({ workerId, ...r }))
      .sort((a, b) => Number(b.quarantined !== null) - Number(a.quarantined !== null) || b.creditSamples - a.creditSamples)
      .slice(0, limit);
  }

  get pendingChecks(): number {
    return this.checks.size;
  }

  // ---- TransportObserver: hears leases and applied pushes -------------------------------------

  hello(workerId: WorkerId, capabilities: WorkerCapabilities): void {
    this.backends.set(workerId, capabilities.backend);
    if (this.backends.size > MAX_RECORDS) this.backends.delete(this.backends.keys().next().value!);
  }

  leased(workerId: WorkerId, jobId: string, ack: LeaseAck): void {
    if (!ack.ok) return;
    const { lease, weights } = ack;
    if (weights) {
      this.versions.set(`${jobId}@${weights.version}`, weights);
      for (const k of this.versions.keys()) {
        if (this.versions.size <= VERSIONS_KEPT) break;
        this.versions.delete(k);
      }
    }
    const w = weights ?? this.versions.get(`${jobId}@${lease.baseVersion}`);
    const cls = backendClass(this.backends.get(workerId) ?? 'unknown');
    if (!w || toleranceFor(cls, cls) === null) return; // nothing to compare with: not checked
    if (this.random() >= checkProbability(this.record(workerId).validated, this.policy.trustAfter)) return;
    // A lease whose rows partly came from the worker's row cache carries only the others: a replica
    // needs them all, in lease order.
    let { x, y } = lease;
    if (lease.fresh !== undefined && toBytes(lease.fresh).byteLength / 4 !== lease.numSamples) {
      const rows = this.shardRows?.(jobId, lease.epoch, lease.shardIndex) ?? null;
      if (!rows) return; // no rows to replay: not checked
      ({ x, y } = rows);
    }
    this.held.set(lease.leaseId, { jobId, epoch: lease.epoch, shard: lease.shardIndex, baseVersion: lease.baseVersion, numSamples: lease.numSamples, x, y, weights: w });
    if (this.held.size > MAX_HELD) this.held.delete(this.held.keys().next().value!);
  }

  pushed(workerId: WorkerId, _jobId: string, push: GradientPush, ack: PushAck): void {
    const h = this.held.get(push.leaseId);
    if (!h) return;
    this.held.delete(push.leaseId);
    // Accepted, applied now or held in a buffer for the next step (buffered aggregation); not a duplicate.
    if (!ack.ok || ack.status === 'duplicate') return;
    // Compressed gradients (top-k, int8...) are not compared: the tolerances are for float32 results.
    if (push.encoding !== undefined && push.encoding !== 'f32') return;
    this.expire();
    const backend = this.backends.get(workerId) ?? 'unknown';
    const grad = floats(push.data);
    const bytes = toBytes(h.weights.data).byteLength + toBytes(h.x).byteLength + toBytes(h.y).byteLength + grad.byteLength * 3;
    const check: Check = {
      id: this.nextId++, jobId: h.jobId, cls: backendClass(backend), epoch: h.epoch, shard: h.shard, baseVersion: h.baseVersion, numSamples: h.numSamples,
      x: h.x, y: h.y, weights: h.weights, createdAt: this.clock.now(), opinions: [{ workerId, address: this.addressOf(workerId), backend, grad }], assigned: new Map(), wanted: 2, bytes,
    };
    this.checks.set(check.id, check);
    this.pinnedBytes += bytes;
    while (this.checks.size > this.policy.maxPending || (this.pinnedBytes > this.policy.maxPinnedBytes && this.checks.size > 1)) {
      this.drop(this.checks.values().next().value!);
      this.counts.expired++;
    }
  }

  // ---- gate: replica leases and their pushes ----------------------------------------------------

  /** A replica lease for this worker (same job, same backend class, another worker and address), or null. */
  replicaLease(workerId: WorkerId, jobId: string): LeaseAck | null {
    if (this.checks.size === 0) return null;
    this.expire();
    const now = this.clock.now();
    const cls = backendClass(this.backends.get(workerId) ?? 'unknown');
    const address = this.addressOf(workerId);
    for (const c of this.checks.values()) {
      if ([...c.assigned.values()].some((a) => a.workerId === workerId)) return null; // one replica at a time
    }
    for (const c of this.checks.values()) {
      if (c.jobId !== jobId || c.cls !== cls || c.opinions.length + c.assigned.size >= c.wanted) continue;
      if (c.opinions.some((o) => o.workerId === workerId || (o.address === address && !this.sameAddressAllowed(o.workerId, workerId, address)))) continue;
      // The deciding third opinion comes from a worker with a validated record, not a newcomer.
      if (c.wanted > 2 && (this.records.get(workerId)?.validated ?? 0) === 0) continue;
      const leaseId = `${REPLICA_PREFIX}${c.id}-${c.opinions.length + c.assigned.size}`;
      const deadlineAt = now + this.policy.replicaLeaseMs;
      c.assigned.set(leaseId, { workerId, deadlineAt });
      this.counts.replicaLeases++;
      return {
        ok: true,
        lease: { leaseId, jobId, epoch: c.epoch, shardIndex: c.shard, baseVersion: c.baseVersion, deadlineAt, numSamples: c.numSamples, x: c.x, y: c.y },
        weights: c.weights,
      };
    }
    return null;
  }

  private sameAddressAllowed(first: WorkerId, replica: WorkerId, address: string): boolean {
    return sameAddressReplicaAllowed(this.policy.sameAddress, address, this.verifiedIdentity(first), this.verifiedIdentity(replica));
  }

  /** A replica lease, or one held to be compared: its gradient must come alone (not summed at a gateway). */
  wantsGradient(leaseId: string): boolean {
    return leaseId.startsWith(REPLICA_PREFIX) || this.held.has(leaseId);
  }

  /** The answer to a push of a replica lease; null when the lease is not a replica (the normal path). */
  takePush(workerId: WorkerId, msg: GradientPush): PushAck | null {
    if (!msg.leaseId.startsWith(REPLICA_PREFIX)) return null;
    const id = Number(msg.leaseId.slice(REPLICA_PREFIX.length).split('-')[0]);
    const c = this.checks.get(id);
    const holder = c?.assigned.get(msg.leaseId);
    if (!c || !holder) return fail(ErrorCode.UnknownLease, `no lease ${msg.leaseId}`);
    if (holder.workerId !== workerId) return fail(ErrorCode.LeaseNotYours, 'lease belongs to another worker');
    if (msg.baseVersion !== c.baseVersion || msg.numSamples !== c.numSamples) {
      return fail(ErrorCode.BadRequest, `the lease is shard ${c.shard} at v${c.baseVersion} with ${c.numSamples} examples`);
    }
    c.assigned.delete(msg.leaseId);
    const grad = floats(msg.data);
    c.opinions.push({ workerId, address: this.addressOf(workerId), backend: this.backends.get(workerId) ?? 'unknown', grad });
    this.decide(c);
    this.save();
    return { ok: true, status: 'applied', version: c.baseVersion, staleness: 0, scale: 0 };
  }

  private compare(a: Opinion, b: Opinion): Comparison {
    const tol = toleranceFor(a.backend, b.backend) ?? { minCosine: 1, maxRelNorm: 0 };
    return compareGradients(a.grad, b.grad, tol);
  }

  private decide(c: Check): void {
    const [a, b, third] = c.opinions;
    if (!a || !b) return;
    if (!third) {
      const cmp = this.compare(a, b);
      if (cmp.agree) {
        this.counts.agreed++;
        this.validate(a.workerId, c.numSamples);
        this.validate(b.workerId, c.numSamples);
        this.drop(c);
      } else {
        this.counts.mismatches++;
        c.wanted = 3; // a third opinion decides who is wrong
      }
      return;
    }
    const withA = this.compare(third, a);
    const withB = this.compare(third, b);
    this.drop(c);
    const where = `shard ${c.shard} of epoch ${c.epoch + 1} at v${c.baseVersion}`;
    if (withA.agree && !withB.agree) {
      [a, third].forEach((o) => this.validate(o.workerId, c.numSamples));
      this.fault(b.workerId, `${where}: cosine ${withB.cosine.toFixed(3)}, norm off by ${(withB.relNorm * 100).toFixed(1)}% against two workers that agreed`);
    } else if (withB.agree && !withA.agree) {
      [b, third].forEach((o) => this.validate(o.workerId, c.numSamples));
      this.fault(a.workerId, `${where}: cosine ${withA.cosine.toFixed(3)}, norm off by ${(withA.relNorm * 100).toFixed(1)}% against two workers that agreed`);
    } else {
      this.counts.inconclusive++;
    }
  }

  private validate(workerId: string, samples: number): void {
    const r = this.record(workerId);
    this.dirty.add(workerId);
    r.validated++;
    r.totalValidated++;
    r.creditSamples += samples;
  }

  private fault(workerId: string, why: string): void {
    const r = this.record(workerId);
    this.dirty.add(workerId);
    this.counts.faults++;
    r.validated = 0;
    r.faults++;
    r.lastFault = why;
    if (r.faults >= this.policy.faultsToQuarantine && !r.quarantined) {
      r.quarantined = `spot checks found ${r.faults} of its results wrong (last: ${why})`;
      this.onQuarantined?.(workerId as WorkerId, r.quarantined);
    }
  }

  private drop(c: Check): void {
    if (this.checks.delete(c.id)) this.pinnedBytes -= c.bytes;
  }

  private expire(): void {
    const now = this.clock.now();
    for (const c of this.checks.values()) {
      for (const [id, a] of c.assigned) if (a.deadlineAt <= now) c.assigned.delete(id);
      if (now - c.createdAt > this.policy.checkTtlMs) {
        this.drop(c);
        this.counts.expired++;
      }
    }
  }
}
