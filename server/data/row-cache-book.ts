// What each worker's row cache holds, as the coordinator knows it: shards are reshuffled every
// epoch, but the rows repeat, so a worker that keeps the rows it received needs only the rows it
// has not seen. Owns, per job, one bitset of rows per worker cache id (bounded in number, oldest
// dropped), and the rows sent with each outstanding lease. A row counts as cached only once the
// lease that carried it was pushed back (so the worker certainly received it); the worker keeps
// every row it receives up to twice the capacity it declared, so it always holds at least what
// this book believes, and the book never marks more than the declared capacity.

import type { RowCacheClaim } from '../../shared/protocol/messages.ts';

interface CacheState {
  readonly workerId: string;
  readonly bits: Uint8Array;
  count: number;
  capacity: number;
}

export class RowCacheBook {
  private readonly caches = new Map<string, CacheState>();
  private readonly sent = new Map<string, { cacheId: string; rows: Uint32Array }>();

  constructor(
    private readonly rowCount: number,
    private readonly maxCaches = 10_000,
    private readonly maxPending = 50_000,
  ) {}

  /**
   * For a lease of `indices` to a worker announcing `claim`: the positions (into indices) of the rows
   * that must travel. A cache id used by another worker is ignored (everything travels).
   */
  plan(leaseId: string, workerId: string, claim: RowCacheClaim, indices: ArrayLike<number>): number[] {
    let c = this.caches.get(claim.id);
    if (c && c.workerId !== workerId) return Array.from({ length: indices.length }, (_, i) => i);
    if (!c) {
      c = { workerId, bits: new Uint8Array((this.rowCount + 7) >> 3), count: 0, capacity: claim.capacity };
      this.caches.set(claim.id, c);
      if (this.caches.size > this.maxCaches) this.caches.delete(this.caches.keys().next().value!);
    } else {
      // Most recently used last: the oldest cache is the one dropped.
      this.caches.delete(claim.id);
      this.caches.set(claim.id, c);
    }
    c.capacity = Math.min(c.capacity, claim.capacity);
    const missing: number[] = [];
    for (let i = 0; i < indices.length; i++) {
      const r = indices[i]!;
      if ((c.bits[r >> 3]! & (1 << (r & 7))) === 0) missing.push(i);
    }
    if (missing.length > 0) {
      this.sent.set(leaseId, { cacheId: claim.id, rows: Uint32Array.from(missing, (i) => indices[i]!) });
      if (this.sent.size > this.maxPending) this.sent.delete(this.sent.keys().next().value!);
    }
    return missing;
  }

  /** The lease was pushed back: its rows are in the worker's cache (up to the declared capacity). */
  confirm(leaseId: string): void {
    const s = this.sent.get(leaseId);
    if (!s) return;
    this.sent.delete(leaseId);
    const c = this.caches.get(s.cacheId);
    if (!c) return;
    for (const r of s.rows) {
      if (c.count >= c.capacity) break;
      const bit = 1 << (r & 7);
      if ((c.bits[r >> 3]! & bit) === 0) {
        c.bits[r >> 3] = c.bits[r >> 3]! | bit;
        c.count++;
      }
    }
  }

  /** The lease ended without a push (released, expired, refused): its rows are not counted. */
  forget(leaseId: string): void {
    this.sent.delete(leaseId);
  }

  cachedRows(cacheId: string): number {
    return this.caches.get(cacheId)?.count ?? 0;
  }
}
