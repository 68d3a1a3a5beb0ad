// Which columns are features and which are labels, from the data section and the train source's
// columns; checks that preprocessing names only feature columns. Pure.

import type { DataSection, Preprocessing } from './data-section.ts';
import { dataError } from './data-error.ts';
import type { ColumnPlan } from './row-reader.ts';
import type { Source } from './source.ts';

const list = (v: string | readonly string[] | undefined): readonly string[] | undefined => (typeof v === 'string' ? [v] : v);

export function planColumns(source: Source, data: DataSection, pre: Preprocessing | undefined, task: ColumnPlan['task']): ColumnPlan {
  const file = source.file;
  const known = `the columns are ${source.columns.join(', ')}`;
  if (source.format === 'images') return { features: ['image'], labels: ['label'], oneHot: new Set(), task };
  const labels = list(data.label);
  if (!labels) throw dataError(file, null, null, `data.label is required: name the label column (${known})`);
  if (task === 'classification' && labels.length !== 1) throw dataError(file, null, null, 'classification takes one label column, not a list');
  const arrays = source.format === 'npz' || source.format === 'npy' || source.format === 'idx';
  let features = list(data.features);
  if (!features) {
    features = source.columns.filter((c) => !labels.includes(c));
    if (arrays && features.length > 1) throw dataError(file, null, null, `several arrays besides the label (${features.join(', ')}): name the feature array in data.features`);
  }
  const leak = features.find((c) => labels.includes(c));
  if (leak !== undefined) throw dataError(file, null, leak, 'data.features lists the label column');
  for (const c of [...labels, ...features]) {
    if (!source.columns.includes(c)) throw dataError(source.columnFiles?.get(c) ?? file, null, c, `no such column (${known})`);
  }
  const named: [string, readonly string[]][] = [
    ['preprocessing.oneHot', pre?.oneHot ?? []],
    ['preprocessing.standardize', Array.isArray(pre?.standardize) ? pre.standardize : []],
    ['preprocessing.scale', typeof pre?.scale === 'object' ? Object.keys(pre.scale) : []],
  ];
  for (const [key, cols] of named) {
    for (const c of cols) if (!features.includes(c)) throw dataError(file, null, c, `${key} names a column that is not a feature`);
  }
  const oneHot = new Set(pre?.oneHot ?? []);
  for (const [key, cols] of named.slice(1)) {
    for (const c of cols) if (oneHot.has(c)) throw dataError(file, null, c, `${key} cannot apply to a one-hot column`);
  }
  return { features, labels, oneHot, task };
}
