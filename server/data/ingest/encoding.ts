// Decides, from the first pass's statistics, how raw rows become stored rows: the feature list
// after one-hot expansion, each feature's scale factor and standardization, uint8 or float32
// storage, and the label -> class index map. Pure; `encodeFeatures` applies it to one row.

import type { FeatureEncoding, TargetSpec } from '../../../shared/data/data-spec.ts';
import { classDtype } from '../../../shared/data/data-spec.ts';
import type { Preprocessing } from './data-section.ts';
import { DataError, dataError } from './data-error.ts';
import type { ColumnPlan, RawRow, Widths } from './row-reader.ts';
import type { Statistics } from './statistics.ts';
import type { StorePreprocessing } from '../store/store-meta.ts';

export interface Encoding {
  readonly featureNames: readonly string[];
  readonly features: FeatureEncoding;
  readonly target: TargetSpec;
  readonly preprocessing: StorePreprocessing;
  /** Per stored feature: index into RawRow.values, or -1 for a one-hot feature. */
  readonly rawIndex: Int32Array;
  readonly factor: Float64Array;
  readonly mean: Float64Array;
  readonly std: Float64Array;
  /** Per one-hot column: its first stored feature and category -> offset. */
  readonly oneHot: readonly { readonly first: number; readonly index: ReadonlyMap<string, number> }[];
  readonly classIndex: ReadonlyMap<string, number>;
}

export interface EncodingInput {
  readonly plan: ColumnPlan;
  readonly widths: Widths;
  readonly stats: Statistics;
  readonly preprocessing: Preprocessing | undefined;
  readonly byteColumns: ReadonlySet<string>;
  readonly inputShape: readonly number[];
  readonly numClasses: number;
  readonly outputUnits: number;
  /** For messages: the train file. */
  readonly file: string;
}

const isNumeric = (k: string) => Number.isFinite(Number(k));

/** Numeric keys in numeric order, otherwise by code point: the order class indices and one-hot features follow. */
export function sortKeys(keys: Iterable<string>): string[] {
  const all = [...keys];
  return all.every(isNumeric) ? all.sort((a, b) => Number(a) - Number(b)) : all.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

const expand = (column: string, width: number): string[] => (width === 1 ? [column] : Array.from({ length: width }, (_, i) => `${column}[${i}]`));

/**
 * Integer labels all in [0, numClasses) are class indices as they are; an integer label past the
 * classes is refused; anything else (strings, negatives, fractions) maps its sorted values to 0..k-1.
 */
function classes(input: EncodingInput): { target: TargetSpec; classIndex: Map<string, number> } {
  const { stats, numClasses, plan } = input;
  const keys = [...stats.labels.keys()];
  const dtype = classDtype(numClasses);
  let classNames: string[];
  if (keys.every((k) => /^-?\d+$/.test(k))) {
    for (const [k, at] of stats.labels) {
      if (Number(k) >= numClasses) {
        throw dataError(at.file, at.where, plan.labels[0]!, `label ${k} is outside the model's ${numClasses} classes (integer labels must be 0..${numClasses - 1})`);
      }
    }
    const identity = keys.every((k) => Number(k) >= 0);
    classNames = identity ? Array.from({ length: numClasses }, (_, i) => String(i)) : sortKeys(keys);
  } else classNames = sortKeys(keys);
  return { target: { kind: 'classes', numClasses, dtype, classNames }, classIndex: new Map(classNames.map((c, i) => [c, i])) };
}

export function decideEncoding(input: EncodingInput): Encoding {
  const { plan, widths, stats, preprocessing: pre } = input;
  const names: string[] = [];
  const rawIndex: number[] = [];
  const columnOf: string[] = [];
  const oneHot: { first: number; index: Map<string, number> }[] = [];
  const oneHotMeta: { column: string; categories: string[] }[] = [];
  let raw = 0;
  plan.features.forEach((c, k) => {
    if (plan.oneHot.has(c)) {
      const categories = sortKeys(stats.categories[oneHot.length]!);
      oneHot.push({ first: names.length, index: new Map(categories.map((v, i) => [v, i])) });
      oneHotMeta.push({ column: c, categories });
      for (const v of categories) names.push(`${c}=${v}`), rawIndex.push(-1), columnOf.push(c);
      return;
    }
    const w = widths.features[k]!;
    for (const n of expand(c, w)) names.push(n), rawIndex.push(raw++), columnOf.push(c);
  });

  const want = input.inputShape.reduce((a, b) => a * b, 1);
  if (names.length !== want) {
    const expanded = oneHotMeta.map((h) => `${h.column}: ${h.categories.length}`).join(', ');
    const after = expanded ? ` after one-hot expansion (${expanded})` : '';
    throw dataError(input.file, null, null, `the rows give ${names.length} features${after} but the model's input shape [${input.inputShape.join(', ')}] takes ${want}`);
  }

  const n = names.length;
  const factor = new Float64Array(n).fill(1);
  const mean = new Float64Array(n);
  const std = new Float64Array(n).fill(1);
  const standardized = new Uint8Array(n);
  const scale = pre?.scale;
  const st = pre?.standardize;
  for (let f = 0; f < n; f++) {
    const r = rawIndex[f]!;
    if (r < 0) continue;
    const c = columnOf[f]!;
    factor[f] = scale === undefined ? (input.byteColumns.has(c) ? 1 / 255 : 1) : typeof scale === 'number' ? scale : (scale[c] ?? 1);
    if (st === true || (Array.isArray(st) && st.includes(c))) {
      standardized[f] = 1;
      const s = stats.std(r) * factor[f]!;
      mean[f] = stats.mean[r]! * factor[f]!;
      std[f] = s > 0 ? s : 1;
    }
  }

  const factors = new Set(factor);
  const bytes = stats.allBytes && !standardized.includes(1) && factors.size <= 1;
  const features: FeatureEncoding = bytes ? { dtype: 'uint8', scale: factors.size === 1 ? [...factors][0]! : 1 } : { dtype: 'float32', scale: 1 };

  let target: TargetSpec;
  let classIndex = new Map<string, number>();
  if (plan.task === 'classification') ({ target, classIndex } = classes(input));
  else {
    const targets = plan.labels.flatMap((c, k) => expand(c, widths.labels[k]!));
    target = { kind: 'regression', outputs: targets.length, names: targets };
  }

  return {
    featureNames: names,
    features,
    target,
    rawIndex: Int32Array.from(rawIndex),
    factor,
    mean,
    std,
    oneHot,
    classIndex,
    preprocessing: {
      rawColumns: [...plan.features],
      oneHot: oneHotMeta,
      standardize: names.flatMap((feature, f) => (standardized[f] ? [{ feature, mean: mean[f]!, std: std[f]! }] : [])),
      scale: names.flatMap((feature, f) => (factor[f] !== 1 ? [{ feature, factor: factor[f]! }] : [])),
    },
  };
}

/** One row's stored features: raw bytes (uint8 storage) or scaled and standardized float32. */
export function encodeFeatures(e: Encoding, raw: RawRow, out: Uint8Array | Float32Array): void {
  out.fill(0);
  const bytes = e.features.dtype === 'uint8';
  for (let f = 0; f < out.length; f++) {
    const r = e.rawIndex[f]!;
    if (r < 0) continue;
    const v = raw.values[r]!;
    out[f] = bytes ? v : (v * e.factor[f]! - e.mean[f]!) / e.std[f]!;
  }
  e.oneHot.forEach((h, j) => {
    const i = h.index.get(raw.categories[j]!);
    if (i !== undefined) out[h.first + i] = 1; // a category unseen in train stays all zeros
  });
}

/** The class index of a label key (decideEncoding has checked every key seen in pass one). */
export function classOf(e: Encoding, key: string): number {
  const i = e.classIndex.get(key);
  if (i === undefined) throw new DataError(`label "${key}" was not seen when the classes were decided`);
  return i;
}
