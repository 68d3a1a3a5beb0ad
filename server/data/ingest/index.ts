// The ingest: a job's data files -> a shard store (server/data/store/) the coordinator serves rows
// from. Two streaming passes over the sources: statistics (counts, labels, categories, mean/std),
// then encode and write. Owns nothing after it returns; on any error it removes what it wrote.

import { bytesPerFeature, targetRowBytes } from '../../../shared/data/data-spec.ts';
import type { SplitName } from '../job-data.ts';
import type { StoreMeta } from '../store/store-meta.ts';
import { StoreWriter } from '../store/store-writer.ts';
import { planColumns } from './columns.ts';
import type { DataSection, Preprocessing } from './data-section.ts';
import { dataError } from './data-error.ts';
import { classOf, decideEncoding, encodeFeatures, type Encoding } from './encoding.ts';
import { describeFiles, openSplit } from './open-source.ts';
import { newRawRow, RowReader, type ColumnPlan, type RawRow, type Widths } from './row-reader.ts';
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

/** One split's rows, in file order, each tagged with the split it belongs to. */
type Visit = (split: SplitName, row: SourceRow, reader: RowReader, source: Source) => void;

interface Prepared {
  readonly train: Source;
  readonly test: Source | null;
  readonly plan: ColumnPlan;
  readonly numClasses: number;
  readonly featureCount: number;
  /** The seeded held-out fraction of train, or null when there is a test file. */
  readonly fraction: number | null;
  /** Reads every row once (a fresh split picker each time, so each pass splits alike). */
  pass(visit: Visit): Promise<void>;
}

interface Scanned {
  readonly widths: Widths;
  readonly raw: RawRow;
  readonly stats: Statistics;
}

export async function ingest(req: IngestRequest): Promise<IngestResult> {
  let writer: StoreWriter | null = null;
  try {
    const job = await prepare(req);
    const scanned = await scan(req, job);
    const enc = decideEncoding({
      plan: job.plan,
      widths: scanned.widths,
      stats: scanned.stats,
      preprocessing: req.preprocessing,
      byteColumns: job.train.byteColumns,
      inputShape: req.model.inputShape,
      numClasses: job.numClasses,
      outputUnits: req.model.outputUnits,
      file: job.train.file,
    });
    const { counts } = scanned.stats;
    const bytes = (counts.train + counts.test) * (job.featureCount * bytesPerFeature(enc.features) + targetRowBytes(enc.target));
    if (bytes > req.limits.maxDatasetBytes) throw overLimit(job.train.file, bytes, req.limits.maxDatasetBytes);

    writer = new StoreWriter(req.outDir);
    await write(req, job, scanned, enc, writer);
    const { data } = req;
    const meta: StoreMeta = {
      formatVersion: 1,
      spec: { featureShape: [...req.model.inputShape], features: enc.features, target: enc.target },
      counts: { ...counts },
      featureNames: enc.featureNames,
      preprocessing: enc.preprocessing,
      labels: { columns: [...job.plan.labels], classNames: enc.target.kind === 'classes' ? enc.target.classNames : undefined },
      sources: { train: describeFiles(data.train), test: data.test === undefined ? null : describeFiles(data.test), validationSplit: job.fraction },
    };
    writer.finish(meta);
    return { meta };
  } catch (e) {
    writer?.abort();
    throw e;
  }
}

/** Opens the sources, plans the columns and sets up the seeded split (counting rows if it must). */
async function prepare(req: IngestRequest): Promise<Prepared> {
  const { data, model } = req;
  const train = await openSplit(req.baseDir, data.train, data.format, model.inputShape);
  const test = data.test === undefined ? null : await openSplit(req.baseDir, data.test, data.format, model.inputShape);
  const plan = planColumns(train, data, req.preprocessing, req.task);
  const trainReader = new RowReader(train, plan);
  const testReader = test && new RowReader(test, plan);

  const fraction = test ? null : (data.validationSplit ?? DEFAULT_VALIDATION_SPLIT);
  let total = train.rowCount ?? 0;
  if (fraction !== null && train.rowCount === null) {
    for await (const _ of train.rows()) if (++total % PROGRESS_EVERY === 0) req.onProgress?.({ phase: 'count', rows: total });
    req.onProgress?.({ phase: 'count', rows: total });
  }
  if (fraction !== null && total === 0) throw empty(train.file);
  if (fraction !== null && total < 2) throw dataError(train.file, null, null, 'the dataset has 1 row; holding out a test split needs at least 2');
  const held = fraction === null ? 0 : heldOut(total, fraction);

  return {
    train,
    test,
    plan,
    numClasses: model.binary ? 2 : model.outputUnits,
    featureCount: model.inputShape.reduce((a, b) => a * b, 1),
    fraction,
    async pass(visit) {
      const pick = fraction === null ? null : splitPicker(req.seed, total, held);
      for await (const row of train.rows()) visit(pick?.() ? 'test' : 'train', row, trainReader, train);
      if (test) for await (const row of test.rows()) visit('test', row, testReader!, test);
    },
  };
}

/** Pass one: list widths from the first row, then every row checked and counted into the statistics. */
async function scan(req: IngestRequest, job: Prepared): Promise<Scanned> {
  const { model, task } = req;
  const { plan } = job;
  const minRowBytes = job.featureCount + (task === 'classification' ? 1 : 4 * model.outputUnits);
  let s: Scanned | null = null;
  let rows = 0;
  await job.pass((split, row, reader, source) => {
    if (s === null) {
      const widths = reader.learnWidths(row);
      checkFirstRow(widths, plan.oneHot.size, source.file, model, task);
      const numeric = widths.features.reduce((a, b) => a + b, 0);
      const label = task === 'classification' ? { column: plan.labels[0]!, numClasses: job.numClasses } : null;
      s = { widths, raw: newRawRow(widths, plan.oneHot.size), stats: new Statistics(numeric, plan.oneHot.size, label) };
    }
    reader.read(row, s.widths, s.raw);
    s.stats.add(split, s.raw, { file: source.columnFiles?.get(plan.labels[0]!) ?? source.file, where: row.where });
    if (++rows * minRowBytes > req.limits.maxDatasetBytes) throw overLimit(source.file, rows * minRowBytes, req.limits.maxDatasetBytes);
    if (rows % PROGRESS_EVERY === 0) req.onProgress?.({ phase: 'scan', rows });
  });
  req.onProgress?.({ phase: 'scan', rows });
  const done = s as Scanned | null;
  if (done === null || done.stats.counts.train === 0) throw empty(job.train.file);
  if (job.test && done.stats.counts.test === 0) throw empty(job.test.file);
  return done;
}

/** Pass two: each row encoded and appended to its split's files. */
async function write(req: IngestRequest, job: Prepared, { widths, raw, stats }: Scanned, enc: Encoding, writer: StoreWriter): Promise<void> {
  const x = enc.features.dtype === 'uint8' ? new Uint8Array(job.featureCount) : new Float32Array(job.featureCount);
  const xBytes = new Uint8Array(x.buffer);
  const y = new ArrayBuffer(targetRowBytes(enc.target));
  const yBytes = new Uint8Array(y);
  const yView = enc.target.kind === 'regression' ? new Float32Array(y) : enc.target.dtype === 'uint8' ? new Uint8Array(y) : new Int32Array(y);
  const written = { train: 0, test: 0 };
  await job.pass((split, row, reader) => {
    reader.read(row, widths, raw);
    encodeFeatures(enc, raw, x);
    if (enc.target.kind === 'regression') yView.set(raw.targets);
    else yView[0] = classOf(enc, raw.label);
    writer.push(split, xBytes, yBytes);
    const n = ++written[split] + written[split === 'train' ? 'test' : 'train'];
    if (n % PROGRESS_EVERY === 0) req.onProgress?.({ phase: 'write', rows: n });
  });
  req.onProgress?.({ phase: 'write', rows: written.train + written.test });
  if (written.train !== stats.counts.train || written.test !== stats.counts.test) {
    throw dataError(job.train.file, null, null, 'the data changed while it was read (the two passes saw different row counts)');
  }
}

const empty = (file: string) => dataError(file, null, null, 'the dataset is empty (no rows)');

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
