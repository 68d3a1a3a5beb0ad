// The worker's row cache: shards are reshuffled every epoch but the rows repeat, so the worker keeps
// the rows it has received (features and targets, by row id) and the coordinator sends only the rows
// it has not seen (server/data/row-cache-book.ts). Owns the rows and the cache id; a fresh id means
// an empty cache, so a reloaded tab or a mismatch simply starts over.

import { toBytes, type BinaryLike } from '../codec/tensor-codec.ts';
import type { RowCacheClaim } from '../protocol/messages.ts';

const u32 = (bin: BinaryLike): Uint32Array => {
  const b = toBytes(bin);
  const a = b.byteOffset % 4 === 0 ? b : b.slice();
  return new Uint32Array(a.buffer, a.byteOffset, a.byteLength / 4);
};

export class RowCache {
  private rows = new Map<number, Uint8Array>();
  private idValue: string;
  /** Rows promised to the coordinator; up to twice as many are kept (see RowCacheBook). */
  readonly capacity: number;

  constructor(
    readonly xRowBytes: number,
    readonly yRowBytes: number,
    maxBytes: number,
  ) {
    this.capacity = Math.max(0, Math.floor(maxBytes / 2 / (xRowBytes + yRowBytes)));
    this.idValue = RowCache.newId();
  }

  private static newId(): string {
    return `rc-${Math.random().toString(36).slice(2, 12)}${Math.random().toString(36).slice(2, 12)}`;
  }

  get claim(): RowCacheClaim {
    return { id: this.idValue, capacity: this.capacity };
  }

  get size(): number {
    return this.rows.size;
  }

  /** Forget everything under a new id (the coordinator then sends every row again). */
  reset(): void {
    this.rows = new Map();
    this.idValue = RowCache.newId();
  }

  /**
   * The lease's full batch (x and y of every row, in order) from the rows that came with it (at the
   * `fresh` positions) and the cached ones; keeps the new rows. Null when a row is not in the cache
   * (the caller resets and hands the lease back).
   */
  assemble(rowIds: BinaryLike, fresh: BinaryLike, x: BinaryLike, y: BinaryLike): { x: Uint8Array; y: Uint8Array } | null {
    const ids = u32(rowIds);
    const pos = u32(fresh);
    const xs = toBytes(x);
    const ys = toBytes(y);
    const { xRowBytes: xr, yRowBytes: yr } = this;
    if (xs.byteLength !== pos.length * xr || ys.byteLength !== pos.length * yr) return null;
    const outX = new Uint8Array(ids.length * xr);
    const outY = new Uint8Array(ids.length * yr);
    let f = 0;
    for (let i = 0; i < ids.length; i++) {
      if (f < pos.length && pos[f] === i) {
        const rx = xs.subarray(f * xr, (f + 1) * xr);
        const ry = ys.subarray(f * yr, (f + 1) * yr);
        outX.set(rx, i * xr);
        outY.set(ry, i * yr);
        if (this.rows.size < 2 * this.capacity && !this.rows.has(ids[i]!)) {
          const row = new Uint8Array(xr + yr);
          row.set(rx, 0);
          row.set(ry, xr);
          this.rows.set(ids[i]!, row);
        }
        f++;
      } else {
        const row = this.rows.get(ids[i]!);
        if (!row) return null;
        outX.set(row.subarray(0, xr), i * xr);
        outY.set(row.subarray(xr), i * yr);
      }
    }
    return f === pos.length ? { x: outX, y: outY } : null;
  }
}
