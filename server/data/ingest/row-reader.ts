// Reads one source's rows into raw numbers: numeric feature cells (scalars and fixed-length lists,
// flattened in column order), one-hot cells as category keys, and the label(s). The widths of list
// columns are learned from the first train row and shared by every source. Pure: throws DataError.

import { asList, PROBLEM_TEXT, toKey, toNumber, type CellProblem } from './cells.ts';
import { dataError } from './data-error.ts';
import type { Source, SourceRow } from './source.ts';

export interface ColumnPlan {
  readonly features: readonly string[];
  readonly labels: readonly string[];
  readonly oneHot: ReadonlySet<string>;
  readonly task: 'classification' | 'regression';
}

/** Widths of numeric feature and regression target columns (0 for one-hot), learned from the first row. */
export interface Widths {
  readonly features: readonly number[];
  readonly labels: readonly number[];
}

export interface RawRow {
  /** Numeric features, flattened (length = sum of numeric widths). */
  readonly values: Float64Array;
  /** One key per one-hot column, in feature-column order. */
  readonly categories: string[];
  /** Classification: the label key. */
  label: string;
  /** Regression: the targets, flattened. */
  readonly targets: Float32Array;
}

const sum = (a: readonly number[]) => a.reduce((x, y) => x + y, 0);

export function newRawRow(w: Widths, oneHotCount: number): RawRow {
  return { values: new Float64Array(sum(w.features)), categories: new Array<string>(oneHotCount).fill(''), label: '', targets: new Float32Array(sum(w.labels)) };
}

export class RowReader {
  private readonly featureIdx: number[];
  private readonly labelIdx: number[];

  constructor(
    private readonly source: Source,
    private readonly plan: ColumnPlan,
  ) {
    const idx = (c: string, what: string) => {
      const i = source.columns.indexOf(c);
      if (i < 0) throw dataError(this.fileOf(c), null, c, `no such ${what} column (the columns are ${source.columns.join(', ')})`);
      return i;
    };
    this.labelIdx = plan.labels.map((c) => idx(c, 'label'));
    this.featureIdx = plan.features.map((c) => idx(c, 'feature'));
  }

  private fileOf(column: string): string {
    return this.source.columnFiles?.get(column) ?? this.source.file;
  }

  fail(row: SourceRow, column: string | null, problem: string): never {
    throw dataError(column === null ? this.source.file : this.fileOf(column), row.where, column, problem);
  }

  private cellFail(row: SourceRow, column: string, p: CellProblem, isFeature: boolean): never {
    const hint = p === 'text' && isFeature ? ` (for a categorical column add it to preprocessing.oneHot)` : '';
    this.fail(row, column, `${PROBLEM_TEXT[p]}${hint}`);
  }

  /** The widths the first row shows (1 for a scalar, n for a list of n numbers). */
  learnWidths(row: SourceRow): Widths {
    const width = (i: number, c: string) => (this.plan.oneHot.has(c) ? 0 : (asList(row.cells[i])?.length ?? 1));
    const labels = this.plan.task === 'regression' ? this.labelIdx.map((i, k) => width(i, this.plan.labels[k]!)) : this.plan.labels.map(() => 0);
    return { features: this.featureIdx.map((i, k) => width(i, this.plan.features[k]!)), labels };
  }

  /** Numbers of a numeric cell into `out` at `at`; checks the width. */
  private numbers(row: SourceRow, column: string, cell: unknown, width: number, out: Float64Array | Float32Array, at: number, isFeature: boolean): void {
    const list = asList(cell);
    if (list === null) {
      if (width !== 1) this.fail(row, column, `the cell holds one value but the first row's holds ${width}`);
      const v = toNumber(cell);
      if (typeof v !== 'number') this.cellFail(row, column, v, isFeature);
      out[at] = v;
      return;
    }
    if (list.length !== width) this.fail(row, column, `the list holds ${list.length} values but the first row's holds ${width}`);
    for (let j = 0; j < width; j++) {
      const v = toNumber(list[j]);
      if (typeof v !== 'number') this.cellFail(row, column, v, isFeature);
      out[at + j] = v;
    }
  }

  read(row: SourceRow, widths: Widths, into: RawRow): void {
    let at = 0;
    let cat = 0;
    this.featureIdx.forEach((i, k) => {
      const c = this.plan.features[k]!;
      const cell = row.cells[i];
      if (this.plan.oneHot.has(c)) {
        const key = toKey(cell);
        if (typeof key !== 'string') this.cellFail(row, c, key.problem, false);
        into.categories[cat++] = key;
        return;
      }
      const w = widths.features[k]!;
      this.numbers(row, c, cell, w, into.values, at, true);
      at += w;
    });
    if (this.plan.task === 'classification') {
      const c = this.plan.labels[0]!;
      const cell = row.cells[this.labelIdx[0]!];
      if (asList(cell) !== null) this.fail(row, c, 'a class label must be one value, not a list');
      const key = toKey(cell);
      if (typeof key !== 'string') this.cellFail(row, c, key.problem, false);
      into.label = key;
      return;
    }
    let t = 0;
    this.labelIdx.forEach((i, k) => {
      const w = widths.labels[k]!;
      this.numbers(row, this.plan.labels[k]!, row.cells[i], w, into.targets, t, false);
      t += w;
    });
  }
}
