// The first pass over the data: counts per split, whether every numeric feature is a byte (0..255
// integer), the training mean/variance of each numeric feature (Welford), the one-hot categories seen
// in train, and the distinct labels with where each was first seen. Memory: O(features + classes).

import { dataError } from './data-error.ts';
import type { RawRow } from './row-reader.ts';
import type { SplitName } from '../job-data.ts';

export interface SeenAt {
  readonly file: string;
  readonly where: string;
}

export class Statistics {
  readonly counts = { train: 0, test: 0 };
  allBytes = true;
  readonly mean: Float64Array;
  readonly m2: Float64Array;
  readonly categories: Set<string>[];
  /** Classification: each distinct label key and where it first appeared. */
  readonly labels = new Map<string, SeenAt>();

  constructor(
    numericWidth: number,
    oneHotColumns: number,
    private readonly label: { readonly column: string; readonly numClasses: number } | null,
  ) {
    this.mean = new Float64Array(numericWidth);
    this.m2 = new Float64Array(numericWidth);
    this.categories = Array.from({ length: oneHotColumns }, () => new Set<string>());
  }

  add(split: SplitName, raw: RawRow, at: SeenAt): void {
    const n = ++this.counts[split];
    const v = raw.values;
    if (split === 'train') {
      for (let j = 0; j < v.length; j++) {
        const x = v[j]!;
        const d = x - this.mean[j]!;
        this.mean[j]! += d / n;
        this.m2[j]! += d * (x - this.mean[j]!);
      }
      raw.categories.forEach((c, j) => this.categories[j]!.add(c));
    }
    if (this.allBytes) for (let j = 0; j < v.length; j++) if (!(Number.isInteger(v[j]) && v[j]! >= 0 && v[j]! <= 255)) this.allBytes = false;
    if (this.label && !this.labels.has(raw.label)) {
      this.labels.set(raw.label, at);
      if (this.labels.size > this.label.numClasses) {
        throw dataError(at.file, at.where, this.label.column, `label "${raw.label}" is distinct label number ${this.labels.size} but the model has ${this.label.numClasses} classes`);
      }
    }
  }

  /** Population std of numeric feature j over train. */
  std(j: number): number {
    return this.counts.train > 0 ? Math.sqrt(this.m2[j]! / this.counts.train) : 0;
  }
}
