// A sortable table that renders only the rows in view (plus a margin), so 1,000+ workers scroll
// and re-sort without freezing the page. Owns the row order and a small pool of <tr> elements;
// the rows themselves are handed in by the caller (setRows).

export interface Column<R> {
  readonly key: string;
  readonly label: string;
  /** Header tooltip: what the column means, units. */
  readonly title?: string;
  readonly numeric?: boolean;
  sortValue(r: R): number | string | null;
  text(r: R): string;
}

export interface VirtualTableOptions {
  /** Rows rendered above and below the visible ones. */
  readonly overscan?: number;
  readonly initialSort?: { key: string; dir: 1 | -1 };
  /** Told after each render: rows total, first and last rendered index. */
  readonly onRender?: (info: { total: number; first: number; last: number }) => void;
}

export class VirtualTable<R> {
  private rows: readonly R[] = [];
  private order: R[] = [];
  private sortKey: string;
  private sortDir: 1 | -1;
  private needsSort = true;
  private rowHeight = 0;
  private readonly body: HTMLTableSectionElement;
  private readonly topPad: HTMLTableRowElement;
  private readonly bottomPad: HTMLTableRowElement;
  private readonly pool: HTMLTableRowElement[] = [];
  private frame = 0;

  constructor(
    private readonly scroller: HTMLElement,
    private readonly table: HTMLTableElement,
    private readonly cols: readonly Column<R>[],
    private readonly opts: VirtualTableOptions = {},
  ) {
    this.sortKey = opts.initialSort?.key ?? cols[0]!.key;
    this.sortDir = opts.initialSort?.dir ?? 1;
    const head = table.createTHead();
    const tr = head.insertRow();
    for (const c of cols) {
      const th = document.createElement('th');
      th.scope = 'col';
      if (c.numeric) th.className = 'num';
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'sort';
      b.dataset.key = c.key;
      b.textContent = c.label;
      if (c.title) b.title = c.title;
      b.addEventListener('click', () => this.sortBy(c.key));
      th.append(b);
      tr.append(th);
    }
    this.body = table.tBodies[0] ?? table.createTBody();
    this.topPad = this.pad();
    this.bottomPad = this.pad();
    scroller.addEventListener('scroll', () => this.schedule(), { passive: true });
    new ResizeObserver(() => this.schedule()).observe(scroller);
    this.paintHeader();
  }

  get size(): number {
    return this.rows.length;
  }

  get sort(): { key: string; dir: 1 | -1 } {
    return { key: this.sortKey, dir: this.sortDir };
  }

  setRows(rows: readonly R[]): void {
    this.rows = rows;
    this.needsSort = true;
    this.schedule();
  }

  /** Sorts by `key` (a second click on the same column reverses). */
  sortBy(key: string, dir?: 1 | -1): void {
    this.sortDir = dir ?? (key === this.sortKey ? (this.sortDir === 1 ? -1 : 1) : this.cols.find((c) => c.key === key)?.numeric ? -1 : 1);
    this.sortKey = key;
    this.needsSort = true;
    this.paintHeader();
    this.render();
  }

  /** Renders on the next frame (coalesces scrolls and data updates). */
  schedule(): void {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  render(): void {
    if (this.needsSort) {
      const col = this.cols.find((c) => c.key === this.sortKey) ?? this.cols[0]!;
      const dir = this.sortDir;
      // Decorate-sort: one sortValue call per row, not per comparison.
      const keyed = this.rows.map((r) => ({ r, k: col.sortValue(r) }));
      // Rows without a value (null) go last whichever the direction.
      keyed.sort((a, b) => (a.k === null ? (b.k === null ? 0 : 1) : b.k === null ? -1 : dir * compare(a.k, b.k)));
      this.order = keyed.map((x) => x.r);
      this.needsSort = false;
    }
    const total = this.order.length;
    const rowH = this.rowHeight || 30;
    const headH = this.table.tHead?.getBoundingClientRect().height ?? 0;
    const view = Math.max(0, this.scroller.clientHeight - headH);
    const overscan = this.opts.overscan ?? 8;
    const first = Math.max(0, Math.floor(Math.max(0, this.scroller.scrollTop) / rowH) - overscan);
    const last = Math.min(total, Math.ceil((this.scroller.scrollTop + view) / rowH) + overscan);
    const count = last - first;
    while (this.pool.length < count) this.pool.push(this.newRow());
    this.topPad.style.height = `${first * rowH}px`;
    this.bottomPad.style.height = `${(total - last) * rowH}px`;
    const frag = document.createDocumentFragment();
    frag.append(this.topPad);
    for (let i = 0; i < count; i++) {
      const r = this.order[first + i]!;
      const tr = this.pool[i]!;
      for (let c = 0; c < this.cols.length; c++) {
        const td = tr.cells[c]!;
        const t = this.cols[c]!.text(r);
        if (td.textContent !== t) {
          td.textContent = t;
          td.title = t; // the full text where the fixed-width cell cuts it short
        }
      }
      frag.append(tr);
    }
    frag.append(this.bottomPad);
    this.body.replaceChildren(frag);
    if (!this.rowHeight && count > 0) {
      const h = this.pool[0]!.getBoundingClientRect().height;
      if (h > 0) {
        this.rowHeight = h;
        if (Math.abs(h - rowH) > 0.5) this.schedule();
      }
    }
    this.opts.onRender?.({ total, first, last });
  }

  private paintHeader(): void {
    for (const th of this.table.tHead?.rows[0]?.cells ?? []) {
      const b = th.querySelector('button')!;
      const on = b.dataset.key === this.sortKey;
      th.setAttribute('aria-sort', on ? (this.sortDir === 1 ? 'ascending' : 'descending') : 'none');
      b.dataset.arrow = on ? (this.sortDir === 1 ? '▲' : '▼') : '';
    }
  }

  private newRow(): HTMLTableRowElement {
    const tr = document.createElement('tr');
    for (const c of this.cols) {
      const td = document.createElement('td');
      if (c.numeric) td.className = 'num';
      tr.append(td);
    }
    return tr;
  }

  private pad(): HTMLTableRowElement {
    const tr = document.createElement('tr');
    tr.className = 'pad';
    tr.setAttribute('aria-hidden', 'true');
    const td = document.createElement('td');
    td.colSpan = this.cols.length;
    tr.append(td);
    return tr;
  }
}

function compare(a: number | string, b: number | string): number {
  if (a === b) return 0;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return String(a).localeCompare(String(b));
}
