// Lease manager: who holds which shard until when. Owns the shard ledger of the open epochs
// (waiting / leased / done) and every lease's deadline. Pure state driven by an injected Clock;
// the transport calls it, and a periodic sweep() reclaims expired leases.
//
// Invariants: a shard is done at most once per epoch; a lease's shard returns to the front of the
// queue when the lease expires, is released, or its worker leaves. A late push from an expired lease
// still counts if its shard is not done yet (its replacement lease is then void).

import type { Clock } from '../../shared/clock.ts';
import { ErrorCode } from '../../shared/protocol/errors.ts';

export type LeaseId = string & { readonly __brand: 'LeaseId' };
export type WorkerId = string & { readonly __brand: 'WorkerId' };

export interface Lease {
  readonly id: LeaseId;
  readonly workerId: WorkerId;
  readonly epoch: number;
  readonly shard: number;
  readonly baseVersion: number;
  readonly grantedAt: number;
  readonly deadlineAt: number;
}

interface EpochLedger {
  readonly epoch: number;
  readonly done: Uint8Array;
  doneCount: number;
  /** Shards not done and not leased, in hand-out order (reissues go to the front). */
  waiting: number[];
  /** shard -> lease currently responsible for it. */
  readonly leasedBy: Map<number, LeaseId>;
}

export interface LedgerSnapshot {
  /** Epochs still open, each with the shards already done. */
  readonly epochs: readonly { epoch: number; done: number[] }[];
}

export type ClaimResult = { ok: true; lease: Lease } | { ok: false; code: ErrorCode; message: string };

export interface LeaseManagerOptions {
  readonly shardsPerEpoch: number;
  /** A shard that fails this often (expiries, invalid gradients)... */
  readonly maxShardFailures?: number | undefined;
  /** ...on at least this many distinct workers is set aside (BOINC's max error results). */
  readonly minFailingWorkers?: number | undefined;
  /**
   * Who counts as a distinct failing worker: by default the worker id; the coordinator passes its
   * client address, so many ids from one address (made up, or freshly issued) count once.
   */
  readonly identityOf?: ((workerId: WorkerId) => string) | undefined;
  /** Leases are not handed out for epochs >= this (the stop condition); Infinity for none. */
  readonly maxEpochs: number;
  readonly clock: Clock;
  readonly newId: () => string;
}

export class LeaseManager {
  private ledgers: EpochLedger[] = [];
  private leases = new Map<LeaseId, Lease>();
  private expired = new Map<LeaseId, Lease>();
  private readonly opts: LeaseManagerOptions;
  /** One past the highest epoch ever opened: an epoch, once closed, is never opened again. */
  private nextEpoch = 0;
  private failures = new Map<string, { count: number; workers: Set<string> }>();
  /** Shards set aside because they kept failing: counted as done, never applied. */
  readonly quarantined: { epoch: number; shard: number; failures: number; workers: number }[] = [];

  constructor(opts: LeaseManagerOptions, snapshot?: LedgerSnapshot) {
    this.opts = opts;
    const open = snapshot ? snapshot.epochs : [{ epoch: 0, done: [] }];
    for (const e of open) this.openEpoch(e.epoch, e.done);
    // A snapshot with no open epoch was taken after the last one closed: it stays exhausted.
    if (open.length === 0) this.nextEpoch = Infinity;
  }

  /** The oldest open epoch: training is "in" this epoch. */
  get currentEpoch(): number {
    return this.ledgers[0]?.epoch ?? 0;
  }

  get shardsPerEpoch(): number {
    return this.opts.shardsPerEpoch;
  }

  /** Fraction of the current epoch done. */
  get epochFraction(): number {
    const l = this.ledgers[0];
    return l ? l.doneCount / this.opts.shardsPerEpoch : 0;
  }

  /** Counts of the current epoch's shards, for dashboards. */
  shardCounts(): { done: number; leased: number; waiting: number } {
    const l = this.ledgers[0];
    if (!l) return { done: 0, leased: 0, waiting: 0 };
    return { done: l.doneCount, leased: l.leasedBy.size, waiting: l.waiting.length };
  }

  get outstanding(): readonly Lease[] {
    return [...this.leases.values()];
  }

  /** Hands the next shard to `workerId`, or null when every open shard is taken or done. */
  grant(workerId: WorkerId, baseVersion: number, timeoutMs: number): Lease | null {
    let ledger = this.ledgers.find((l) => l.waiting.length > 0);
    if (!ledger) {
      // Everything in the open epochs is leased or done: open the next epoch early so that
      // the tail of an epoch never idles the workers.
      const next = this.nextEpoch;
      if (this.ledgers.length >= 2 || next >= this.opts.maxEpochs) return null;
      ledger = this.openEpoch(next, []);
    }
    const shard = ledger.waiting.shift()!;
    const now = this.opts.clock.now();
    const lease: Lease = {
      id: this.opts.newId() as LeaseId,
      workerId,
      epoch: ledger.epoch,
      shard,
      baseVersion,
      grantedAt: now,
      deadlineAt: now + timeoutMs,
    };
    ledger.leasedBy.set(shard, lease.id);
    this.leases.set(lease.id, lease);
    return lease;
  }

  /**
   * Checks that `leaseId` may deliver its shard now. Does not change state: the caller applies
   * the gradient, then calls complete(). A late lease (expired, shard not yet done) is accepted.
   */
  claim(leaseId: string, workerId: WorkerId): ClaimResult {
    const lease = this.leases.get(leaseId as LeaseId) ?? this.expired.get(leaseId as LeaseId);
    if (!lease) return { ok: false, code: ErrorCode.UnknownLease, message: `no lease ${leaseId}` };
    if (lease.workerId !== workerId) return { ok: false, code: ErrorCode.LeaseNotYours, message: 'lease belongs to another worker' };
    const ledger = this.ledger(lease.epoch);
    if (!ledger || ledger.done[lease.shard]) {
      return { ok: false, code: ErrorCode.ShardAlreadyDone, message: `shard ${lease.shard} of epoch ${lease.epoch} is already done` };
    }
    return { ok: true, lease };
  }

  /** Marks the lease's shard done. Returns the epochs completed by this (usually none). */
  complete(lease: Lease): number[] {
    this.failures.delete(`${lease.epoch}:${lease.shard}`);
    const ledger = this.ledger(lease.epoch);
    this.leases.delete(lease.id);
    this.expired.delete(lease.id);
    if (!ledger || ledger.done[lease.shard]) return [];
    ledger.done[lease.shard] = 1;
    ledger.doneCount++;
    const holder = ledger.leasedBy.get(lease.shard);
    if (holder !== undefined) {
      ledger.leasedBy.delete(lease.shard);
      if (holder !== lease.id) {
        // A late push won: the replacement lease is void.
        const other = this.leases.get(holder);
        this.leases.delete(holder);
        if (other) this.expired.set(holder, other);
      }
    } else {
      ledger.waiting = ledger.waiting.filter((s) => s !== lease.shard);
    }
    const completed: number[] = [];
    while (this.ledgers[0] && this.ledgers[0].doneCount === this.opts.shardsPerEpoch) {
      const doneLedger = this.ledgers.shift()!;
      completed.push(doneLedger.epoch);
      for (const [id, l] of this.expired) if (l.epoch <= doneLedger.epoch) this.expired.delete(id);
      if (this.ledgers.length === 0 && doneLedger.epoch + 1 < this.opts.maxEpochs) this.openEpoch(doneLedger.epoch + 1, []);
    }
    return completed;
  }

  /** Marks a shard done without a live lease (replaying the update log after a restart). */
  markDone(epoch: number, shard: number): number[] {
    if (!this.ledger(epoch)) {
      if (epoch < this.nextEpoch || epoch >= this.opts.maxEpochs) return [];
      this.openEpoch(epoch, []);
    }
    const holder = this.ledger(epoch)!.leasedBy.get(shard);
    const lease = (holder && this.leases.get(holder)) || { id: '' as LeaseId, workerId: '' as WorkerId, epoch, shard, baseVersion: 0, grantedAt: 0, deadlineAt: 0 };
    return this.complete(lease);
  }

  /** Re-installs a lease that was outstanding before a restart; false if its shard is done or taken. */
  restore(lease: Lease): boolean {
    const ledger = this.ledger(lease.epoch);
    if (!ledger || ledger.done[lease.shard] || ledger.leasedBy.has(lease.shard)) return false;
    ledger.waiting = ledger.waiting.filter((s) => s !== lease.shard);
    ledger.leasedBy.set(lease.shard, lease.id);
    this.leases.set(lease.id, lease);
    return true;
  }

  /**
   * Counts a failure of the lease's shard (expired, or its gradient was invalid). A shard failing
   * maxShardFailures times on minFailingWorkers distinct workers is set aside: reported, never
   * retried forever. Returns the epochs this completes (a quarantined shard counts as done).
   */
  recordFailure(lease: Lease): { quarantined: boolean; completed: number[] } {
    const key = `${lease.epoch}:${lease.shard}`;
    const f = this.failures.get(key) ?? { count: 0, workers: new Set<string>() };
    f.count++;
    f.workers.add(this.opts.identityOf?.(lease.workerId) ?? lease.workerId);
    this.failures.set(key, f);
    const max = this.opts.maxShardFailures ?? 8;
    const minWorkers = this.opts.minFailingWorkers ?? 3;
    const ledger = this.ledger(lease.epoch);
    if (f.count < max || f.workers.size < minWorkers || !ledger || ledger.done[lease.shard]) return { quarantined: false, completed: [] };
    this.quarantined.push({ epoch: lease.epoch, shard: lease.shard, failures: f.count, workers: f.workers.size });
    this.failures.delete(key);
    return { quarantined: true, completed: this.markDone(lease.epoch, lease.shard) };
  }

  /** Hands a lease back (worker stopped, or its gradient was refused): the shard is reissued first. */
  release(leaseId: string): Lease | null {
    const lease = this.leases.get(leaseId as LeaseId);
    if (!lease) return null;
    this.requeue(lease);
    return lease;
  }

  /** Releases every lease held by a worker that left. */
  releaseWorker(workerId: WorkerId): Lease[] {
    const gone = [...this.leases.values()].filter((l) => l.workerId === workerId);
    for (const l of gone) this.requeue(l);
    return gone;
  }

  /** Reclaims leases past their deadline; returns them. */
  sweep(): Lease[] {
    const now = this.opts.clock.now();
    const late = [...this.leases.values()].filter((l) => l.deadlineAt <= now);
    for (const l of late) {
      this.requeue(l);
      this.expired.set(l.id, l);
    }
    return late;
  }

  /** No more shards will ever be handed out (the stop condition's epochs are all done). */
  get exhausted(): boolean {
    return this.ledgers.length === 0;
  }

  snapshot(): LedgerSnapshot {
    return {
      epochs: this.ledgers.map((l) => {
        const done: number[] = [];
        l.done.forEach((d, i) => d && done.push(i));
        return { epoch: l.epoch, done };
      }),
    };
  }

  private requeue(lease: Lease): void {
    this.leases.delete(lease.id);
    const ledger = this.ledger(lease.epoch);
    if (!ledger || ledger.done[lease.shard]) return;
    if (ledger.leasedBy.get(lease.shard) === lease.id) {
      ledger.leasedBy.delete(lease.shard);
      ledger.waiting.unshift(lease.shard);
    }
  }

  private ledger(epoch: number): EpochLedger | undefined {
    return this.ledgers.find((l) => l.epoch === epoch);
  }

  private openEpoch(epoch: number, done: readonly number[]): EpochLedger {
    const n = this.opts.shardsPerEpoch;
    const mark = new Uint8Array(n);
    for (const s of done) if (s >= 0 && s < n) mark[s] = 1;
    const waiting: number[] = [];
    for (let i = 0; i < n; i++) if (!mark[i]) waiting.push(i);
    const ledger: EpochLedger = { epoch, done: mark, doneCount: n - waiting.length, waiting, leasedBy: new Map() };
    this.nextEpoch = Math.max(this.nextEpoch, epoch + 1);
    this.ledgers.push(ledger);
    this.ledgers.sort((a, b) => a.epoch - b.epoch);
    return ledger;
  }
}
