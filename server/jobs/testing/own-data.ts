// Test fixtures for "train your own model on your own data": job folders with data files written by
// each format's own library (csv-stringify, hyparquet-writer, apache-arrow) and models saved by
// tfjs itself (model.json + weights.bin, the layout model.save() writes). Shared by the job-file,
// CLI and end-to-end tests and by bench/workers.ts.

import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'csv-stringify/sync';
import { parquetWriteFile } from 'hyparquet-writer';
import { tableFromArrays, tableToIPC } from 'apache-arrow';
import { tf } from '../../../shared/training/tf.ts';
import { mulberry32 } from '../../data/sharder.ts';
import { loadMnist } from '../../data/dataset.ts';
import type { StoreMeta } from '../../data/store/store-meta.ts';

/** Writes a model as tfjs's own save handler lays it out: model.json (+ weights.bin when `weights`). */
export async function saveModel(model: tf.LayersModel, dir: string, weights = true): Promise<void> {
  await mkdir(dir, { recursive: true });
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      const json: Record<string, unknown> = { format: 'layers-model', generatedBy: `TensorFlow.js tfjs-layers v${tf.version.tfjs}`, convertedBy: null, modelTopology: a.modelTopology };
      if (weights && a.weightData && a.weightSpecs) {
        json.weightsManifest = [{ paths: ['weights.bin'], weights: a.weightSpecs }];
        await writeFile(path.join(dir, 'weights.bin'), new Uint8Array(a.weightData as ArrayBuffer));
      }
      await writeFile(path.join(dir, 'model.json'), JSON.stringify(json));
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
}

function gaussian(rnd: () => number): number {
  return Math.sqrt(-2 * Math.log(rnd() || 1e-12)) * Math.cos(2 * Math.PI * rnd());
}

export const SPECIES = ['setosa', 'versicolor', 'virginica'] as const;
export const COLORS = ['blue', 'green', 'red'] as const;

/**
 * Tabular classification (CSV): three species as Gaussian blobs over six numeric columns on very
 * different scales, plus a categorical `color` column (one-hot in the job) that carries signal too.
 */
export function blobsRows(n: number, seed: number): Record<string, string | number>[] {
  const rnd = mulberry32(seed);
  const rows: Record<string, string | number>[] = [];
  for (let i = 0; i < n; i++) {
    const k = Math.floor(rnd() * 3);
    const row: Record<string, string | number> = {};
    for (let f = 0; f < 6; f++) row[`f${f}`] = Number((((k === f % 3 ? 1.6 : -0.8) + gaussian(rnd)) * 10 ** (f % 3)).toFixed(4));
    row.color = rnd() < 0.6 ? COLORS[k]! : COLORS[Math.floor(rnd() * 3)]!;
    row.species = SPECIES[k]!;
    rows.push(row);
  }
  return rows;
}

export async function writeCsvJob(dir: string, opts: { train?: number; test?: number; seed?: number } = {}): Promise<string> {
  await mkdir(dir, { recursive: true });
  const train = blobsRows(opts.train ?? 1500, opts.seed ?? 1);
  const test = blobsRows(opts.test ?? 500, (opts.seed ?? 1) + 1000);
  await writeFile(path.join(dir, 'train.csv'), stringify(train, { header: true }));
  await writeFile(path.join(dir, 'test.csv'), stringify(test, { header: true }));
  // 6 numeric + 3 one-hot colour columns -> 9 inputs; 3 classes, softmax.
  const model = tf.sequential({ layers: [tf.layers.dense({ inputShape: [9], units: 16, activation: 'relu' }), tf.layers.dense({ units: 3, activation: 'softmax' })] });
  await saveModel(model, dir, false);
  model.dispose();
  const job = {
    name: 'Species from measurements',
    model: 'model.json',
    data: { train: 'train.csv', test: 'test.csv', label: 'species' },
    task: 'classification',
    preprocessing: { standardize: true, oneHot: ['color'] },
    optimizer: { kind: 'adam', learningRate: 0.01 },
    batchSize: 32,
    stop: { maxEpochs: 6 },
  };
  const file = path.join(dir, 'job.json');
  await writeFile(file, JSON.stringify(job, null, 2));
  return file;
}

/** Image classification from a Parquet pixel table (784 pixel columns + label) cut from the real MNIST. */
export async function writeParquetMnistJob(dir: string, opts: { train?: number; test?: number } = {}): Promise<string> {
  await mkdir(dir, { recursive: true });
  const mnist = await loadMnist();
  const write = (file: string, split: { x: Uint8Array; y: Uint8Array }, from: number, n: number): void => {
    const columnData = Array.from({ length: 784 }, (_, p) => {
      const data = new Int32Array(n);
      for (let i = 0; i < n; i++) data[i] = split.x[(from + i) * 784 + p]!;
      return { name: `p${p}`, data, type: 'INT32' as const };
    });
    columnData.push({ name: 'digit', data: Int32Array.from(split.y.subarray(from, from + n)), type: 'INT32' as const });
    parquetWriteFile({ filename: file, columnData });
  };
  write(path.join(dir, 'train.parquet'), mnist.train, 0, opts.train ?? 6000);
  write(path.join(dir, 'test.parquet'), mnist.test, 0, opts.test ?? 1000);
  const model = tf.sequential({ layers: [tf.layers.dense({ inputShape: [784], units: 64, activation: 'relu' }), tf.layers.dense({ units: 10, activation: 'softmax' })] });
  await saveModel(model, dir, true); // starts from these weights (fine-tuning path)
  model.dispose();
  const job = {
    name: 'Digits from a Parquet table',
    model: 'model.json',
    data: { train: 'train.parquet', test: 'test.parquet', label: 'digit' },
    task: 'classification',
    preprocessing: { scale: 1 / 255 },
    optimizer: { kind: 'adam', learningRate: 0.003 },
    batchSize: 64,
    // The robust buffered default takes fewer, larger steps than plain async: 6 epochs to plateau.
    stop: { maxEpochs: 6 },
  };
  const file = path.join(dir, 'job.json');
  await writeFile(file, JSON.stringify(job, null, 2));
  return file;
}

/** y = 2*x0 - x1 + 0.5*x2*x3 + noise: a smooth target an MLP fits well. */
export function regressionColumns(n: number, seed: number): Record<string, Float64Array> {
  const rnd = mulberry32(seed);
  const cols: Record<string, Float64Array> = { x0: new Float64Array(n), x1: new Float64Array(n), x2: new Float64Array(n), x3: new Float64Array(n), y: new Float64Array(n) };
  for (let i = 0; i < n; i++) {
    const x = [0, 1, 2, 3].map(() => rnd() * 2 - 1);
    for (let f = 0; f < 4; f++) cols[`x${f}`]![i] = x[f]!;
    cols.y![i] = 2 * x[0]! - x[1]! + 0.5 * x[2]! * x[3]! + 0.05 * gaussian(rnd);
  }
  return cols;
}

/** Regression from Arrow IPC files (file format for train, stream format for test). */
export async function writeArrowRegressionJob(dir: string, opts: { train?: number; test?: number } = {}): Promise<string> {
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'train.arrow'), tableToIPC(tableFromArrays(regressionColumns(opts.train ?? 2000, 7)), 'file'));
  await writeFile(path.join(dir, 'test.arrows'), tableToIPC(tableFromArrays(regressionColumns(opts.test ?? 500, 8)), 'stream'));
  const model = tf.sequential({ layers: [tf.layers.dense({ inputShape: [4], units: 32, activation: 'tanh' }), tf.layers.dense({ units: 1 })] });
  await saveModel(model, dir, false);
  model.dispose();
  const job = {
    name: 'Regression from Arrow',
    model: 'model.json',
    data: { train: 'train.arrow', test: 'test.arrows', label: 'y', format: 'arrow' },
    task: 'regression',
    optimizer: { kind: 'adam', learningRate: 0.01 },
    batchSize: 32,
    stop: { maxEpochs: 8 },
  };
  const file = path.join(dir, 'job.json');
  await writeFile(file, JSON.stringify(job, null, 2));
  return file;
}

/**
 * Raw rows (column name -> cell) to model inputs with an export's preprocessing.json: what the
 * README tells users to do with a trained model. One-hot columns expand to `col=category`.
 */
export function prepareRows(meta: StoreMeta, rows: readonly Record<string, unknown>[]): Float32Array {
  const p = meta.preprocessing;
  const names = meta.featureNames;
  const scale = new Map(p.scale.map((s) => [s.feature, s.factor]));
  const stand = new Map(p.standardize.map((s) => [s.feature, s]));
  const out = new Float32Array(rows.length * names.length);
  rows.forEach((row, r) => {
    names.forEach((name, f) => {
      const eq = name.indexOf('=');
      let v: number;
      if (eq > 0 && p.oneHot.some((o) => o.column === name.slice(0, eq))) v = String(row[name.slice(0, eq)]) === name.slice(eq + 1) ? 1 : 0;
      else v = Number(row[name]);
      v *= scale.get(name) ?? 1;
      const s = stand.get(name);
      if (s) v = (v - s.mean) / s.std;
      out[r * names.length + f] = v;
    });
  });
  return out;
}
