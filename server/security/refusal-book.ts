// Refusals counted per worker (or per address before a worker has said hello) and per code, for
// the dashboard. Owns only those counters, bounded: the least recently refused names go first.

import type { ErrorCode } from '../../shared/protocol/errors.ts';

export const MAX_NAMES_KEPT = 5_000;

export interface RefusalRow {
  readonly who: string;
  readonly counts: Readonly<Record<string, number>>;
  readonly total: number;
  readonly lastAt: number;
}

export class RefusalCounts {
  private readonly rows = new Map<string, { counts: Record<string, number>; total: number; lastAt: number }>();
  private readonly totals: Record<string, number> = {};

  constructor(private readonly max = MAX_NAMES_KEPT) {}

  /** `who`: a worker id, or `address <ip>` for requests before hello (and refused connections). */
  count(who: string, code: ErrorCode | string, at: number): void {
    let row = this.rows.get(who);
    if (row) this.rows.delete(who);
    else row = { counts: {}, total: 0, lastAt: at };
    row.counts[code] = (row.counts[code] ?? 0) + 1;
    row.total++;
    row.lastAt = at;
    this.rows.set(who, row);
    this.totals[code] = (this.totals[code] ?? 0) + 1;
    while (this.rows.size > this.max) this.rows.delete(this.rows.keys().next().value!);
  }

  of(who: string): Readonly<Record<string, number>> {
    return { ...(this.rows.get(who)?.counts ?? {}) };
  }

  /** Totals per code since start, and the `limit` names refused most. */
  snapshot(limit = 100): { totals: Record<string, number>; top: RefusalRow[] } {
    const top = [...this.rows.entries()]
      .map(([who, r]) => ({ who, counts: { ...r.counts }, total: r.total, lastAt: r.lastAt }))
      .sort((a, b) => b.total - a.total)
      .slice(0, limit);
    return { totals: { ...this.totals }, top };
  }

  get size(): number {
    return this.rows.size;
  }
}
