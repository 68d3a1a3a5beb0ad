// The ingest: a job's data files -> a shard store (server/data/store/) the coordinator serves rows
// from. Two streaming passes over the sources: statistics (counts, labels, categories, mean/std),
// then encode and write. Owns nothing after it returns; on any error it removes what it wrote.

import { targetRowBytes, type DataSpec } from '../../../shared/data/data-spec.ts';
import type { SplitName } from '../job-data.ts';
import type { StoreMeta } from '../store/store-meta.ts';
import { StoreWriter } from '../store/store-writer.ts';
import { planColumns } from './columns.ts';
import type { DataSection, Preprocessing } from './data-section.ts';
import { dataError } from './data-error.ts';
import { classOf, decideEncoding, encodeFeatures } from './encoding.ts';
import { describeFiles, openSplit } from './open-source.ts';
import { newRawRow, RowReader, type RawRow, type Widths } from './row-reader.ts';
import type { Source, SourceRow } from './source.ts';
import { heldOut, splitPicker } from './split.ts';
import { Statistics } from './statistics.ts';

export { DataError } from './data-error.ts';
export { DataSection, Preprocessing, DATA_FORMATS, type DataFormat } from './data-section.ts';
export type { StoreMeta } from '../store/store-meta.ts';

export interface IngestRequest {
  /** Folder of the job file: data paths are relative to it. */
  readonly baseDir: string;
  readonly data: DataSection;
  readonly preprocessing?: Preprocessing | undefined;
  readonly task: 'classification' | 'regression';
  /** The model's input shape without the batch dim (e.g. [30] or [28,28,1]) and its output units (last dim). */
  readonly model: { readonly inputShape: readonly number[]; readonly outputUnits: number; readonly binary: boolean /* one sigmoid unit: 2 classes */ };
  readonly seed: number;
  /** An empty folder the store is written into. */
  readonly outDir: string;
  readonly limits: { readonly maxDatasetBytes: number };
  /** Rows done so far in a phase: 'count' (a CSV or Arrow stream split by validationSplit), 'scan', 'write'. */
  readonly onProgress?: ((p: { readonly phase: string; readonly rows: number }) => void) | undefined;
}

export interface IngestResult {
  readonly meta: StoreMeta;
}

/** Held out of train when the job gives no test file and no validationSplit. */
export const DEFAULT_VALIDATION_SPLIT = 0.2;
const PROGRESS_EVERY = 10_000;

interface Pass {
  (visit: (split: SplitName, row: SourceRow, reader: RowReader, source: Source) => void): Promise<void>;
}

export async function ingest(req: IngestRequest): Promise<IngestResult> {
  let writer: StoreWriter | null = null;
  try {
    return await run(req, (w) => (writer = w));
  } catch (e) {
    (writer as StoreWriter | null)?.abort();
    throw e;
  }
}

async function run(req: IngestRequest, opened: (w: StoreWriter) => void): Promise<IngestResult> {
  const { data, model, task } = req;
  const pre = req.preprocessing;
  const numClasses = model.binary ? 2 : model.outputUnits;
  const train = await openSplit(req.baseDir, data.train, data.format, model.inputShape);
  const test = data.test === undefined ? null : await openSplit(req.baseDir, data.test, data.format, model.inputShape);
  const plan = planColumns(train, data, pre, task);
  const trainReader = new RowReader(train, plan);
  const testReader = test && new RowReader(test, plan);
  const progress = (phase: string, rows: number) => req.onProgress?.({ phase, rows });

  // The seeded split of train when there is no test file: exactly `held` rows, the same on each pass.
  const fraction = test ? null : (data.validationSplit ?? DEFAULT_VALIDATION_SPLIT);
  let total = train.rowCount;
  if (fraction !== null && total === null) {
    total = 0;
    for await (const _ of train.rows()) if (++total % PROGRESS_EVERY === 0) progress('count', total);
    progress('count', total);
  }
  if (fraction !== null && total! < 2) throw dataError(train.file, null, null, `the dataset has ${total} rows; holding out a test split needs at least 2`);
  const held = fraction === null ? 0 : heldOut(total!, fraction);

  const pass: Pass = async (visit) => {
    const pick = fraction === null ? null : splitPicker(req.seed, total!, held);
    for await (const row of train.rows()) visit(pick?.() ? 'test' : 'train', row, trainReader, train);
    if (test) for await (const row of test.rows()) visit('test', row, testReader!, test);
  };

  // Pass one: widths from the first row, then statistics.
  const featureCount = model.inputShape.reduce((a, b) => a * b, 1);
  const yRowMin = task === 'classification' ? 1 : 4 * model.outputUnits;
  let widths: Widths | null = null;
  let raw: RawRow | null = null;
  let stats: Statistics | null = null;
  let rows = 0;
  await pass((split, row, reader, source) => {
    if (widths === null) {
      widths = reader.learnWidths(row);
      checkFirstRow(widths, plan.oneHot.size, source.file, model, task);
      raw = newRawRow(widths, plan.oneHot.size);
      const numeric = widths.features.reduce((a, b) => a + b, 0);
      stats = new Statistics(numeric, plan.oneHot.size, task === 'classification' ? { column: plan.labels[0]!, numClasses } : null);
    }
    reader.read(row, widths, raw!);
    stats!.add(split, raw!, { file: source.columnFiles?.get(plan.labels[0]!) ?? source.file, where: row.where });
    if (++rows * (featureCount + yRowMin) > req.limits.maxDatasetBytes) throw overLimit(source.file, rows * (featureCount + yRowMin), req.limits.maxDatasetBytes);
    if (rows % PROGRESS_EVERY === 0) progress('scan', rows);
  });
  progress('scan', rows);
  if (stats === null || widths === null || (stats as Statistics).counts.train === 0) throw dataError(train.file, null, null, 'the dataset is empty (no rows)');
  const st: Statistics = stats;
  if (test && st.counts.test === 0) throw dataError(test.file, null, null, 'the test set is empty (no rows)');

  const enc = decideEncoding({
    plan,
    widths,
    stats: st,
    preprocessing: pre,
    byteColumns: train.byteColumns,
    inputShape: model.inputShape,
    numClasses,
    outputUnits: model.outputUnits,
    file: train.file,
  });
  const spec: DataSpec = { featureShape: [...model.inputShape], features: enc.features, target: enc.target };
  const xRow = featureCount * (enc.features.dtype === 'uint8' ? 1 : 4);
  const yRow = targetRowBytes(enc.target);
  const bytes = (st.counts.train + st.counts.test) * (xRow + yRow);
  if (bytes > req.limits.maxDatasetBytes) throw overLimit(train.file, bytes, req.limits.maxDatasetBytes);

  // Pass two: encode each row and append it to its split's files.
  const w = new StoreWriter(req.outDir);
  opened(w);
  const x = enc.features.dtype === 'uint8' ? new Uint8Array(featureCount) : new Float32Array(featureCount);
  const xBytes = new Uint8Array(x.buffer);
  const y = new ArrayBuffer(yRow);
  const yBytes = new Uint8Array(y);
  const yView = enc.target.kind === 'regression' ? new Float32Array(y) : enc.target.dtype === 'uint8' ? new Uint8Array(y) : new Int32Array(y);
  const written = { train: 0, test: 0 };
  await pass((split, row, reader) => {
    reader.read(row, widths!, raw!);
    encodeFeatures(enc, raw!, x);
    if (enc.target.kind === 'regression') yView.set(raw!.targets);
    else yView[0] = classOf(enc, raw!.label);
    w.push(split, xBytes, yBytes);
    written[split]++;
    if ((written.train + written.test) % PROGRESS_EVERY === 0) progress('write', written.train + written.test);
  });
  progress('write', written.train + written.test);
  if (written.train !== st.counts.train || written.test !== st.counts.test) {
    throw dataError(train.file, null, null, 'the data changed while it was read (the two passes saw different row counts)');
  }

  const meta: StoreMeta = {
    formatVersion: 1,
    spec,
    counts: { ...written },
    featureNames: enc.featureNames,
    preprocessing: enc.preprocessing,
    labels: { columns: [...plan.labels], classNames: enc.target.kind === 'classes' ? enc.target.classNames : undefined },
    sources: { train: describeFiles(data.train), test: data.test === undefined ? null : describeFiles(data.test), validationSplit: fraction },
  };
  w.finish(meta);
  return { meta };
}

function checkFirstRow(widths: Widths, oneHotColumns: number, file: string, model: IngestRequest['model'], task: IngestRequest['task']): void {
  const want = model.inputShape.reduce((a, b) => a * b, 1);
  const got = widths.features.reduce((a, b) => a + b, 0);
  if (oneHotColumns === 0 && got !== want) {
    throw dataError(file, null, null, `the rows give ${got} features but the model's input shape [${model.inputShape.join(', ')}] takes ${want}`);
  }
  const targets = widths.labels.reduce((a, b) => a + b, 0);
  if (task === 'regression' && targets !== model.outputUnits) {
    throw dataError(file, null, null, `the label columns give ${targets} targets per row but the model has ${model.outputUnits} output units`);
  }
}

const overLimit = (file: string, bytes: number, max: number) =>
  dataError(file, null, null, `the dataset needs at least ${bytes} bytes as stored, over the limit of ${max} bytes`);
