// Opens one split's files as a Source: resolves paths against the job file's folder, refuses a
// missing file or an unknown format, and picks the reader by format (data.format overrides the
// extension). Also the image shape an image folder is decoded to, from the model's input shape.

import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { DataFormat, SplitFiles } from './data-section.ts';
import { dataError } from './data-error.ts';
import { openArrow } from './read-arrow.ts';
import { arraysSource, readIdx, readNpz, npyArray, type NamedArray } from './read-arrays.ts';
import { openCsv } from './read-csv.ts';
import { openImages, type ImageShape } from './read-images.ts';
import { openParquet } from './read-parquet.ts';
import { formatOf, type Source } from './source.ts';

const KNOWN = '.csv, .parquet, .arrow/.feather/.ipc, .npz, .npy, IDX (*-ubyte, *-ubyte.gz) or a folder of images';

/** How the split is named in meta.json and messages. */
export const describeFiles = (f: SplitFiles): string =>
  typeof f === 'string' ? f : Object.entries(f).map(([k, v]) => `${k}=${v}`).join(', ');

/** [H, W] or [H, W, 1] -> grey, [H, W, 3] -> RGB; otherwise null (not an image model). */
export function imageShape(inputShape: readonly number[]): ImageShape | null {
  const [height, width, c = 1] = inputShape;
  if (height === undefined || width === undefined || inputShape.length > 3 || (c !== 1 && c !== 3)) return null;
  return { height, width, channels: c };
}

async function locate(baseDir: string, file: string, format: DataFormat | undefined): Promise<{ abs: string; format: DataFormat }> {
  const abs = path.resolve(baseDir, file);
  const st = await stat(abs).catch(() => null);
  if (st === null) throw dataError(file, null, null, `no such file or folder (looked for ${abs})`);
  const f = format ?? formatOf(abs, st.isDirectory());
  if (f === null) throw dataError(file, null, null, `unknown data format: use ${KNOWN}, or set data.format`);
  if (st.isDirectory() !== (f === 'images')) throw dataError(file, null, null, st.isDirectory() ? `a folder, but data.format says ${f}` : 'not a folder (an image dataset is a folder with one sub-folder per class)');
  return { abs, format: f };
}

export async function openSplit(baseDir: string, files: SplitFiles, format: DataFormat | undefined, inputShape: readonly number[]): Promise<Source> {
  if (typeof files !== 'string') {
    const arrays: NamedArray[] = [];
    let first: 'npy' | 'idx' = 'npy';
    for (const [name, file] of Object.entries(files)) {
      const { abs, format: f } = await locate(baseDir, file, format);
      if (arrays.length === 0 && (f === 'npy' || f === 'idx')) first = f;
      if (f === 'npy') arrays.push(npyArray(name, file, await readFile(abs)));
      else if (f === 'idx') arrays.push(await readIdx(name, abs, file));
      else throw dataError(file, null, null, `a ${f} file holds its own columns; only .npy and IDX files are given as an object of named arrays`);
    }
    return arraysSource(first, describeFiles(files), arrays);
  }
  const { abs, format: f } = await locate(baseDir, files, format);
  switch (f) {
    case 'csv':
      return openCsv(abs, files);
    case 'parquet':
      return openParquet(abs, files);
    case 'arrow':
      return openArrow(abs, files);
    case 'npz':
      return arraysSource('npz', files, await readNpz(abs, files));
    case 'images': {
      const shape = imageShape(inputShape);
      if (!shape) throw dataError(files, null, null, `an image folder needs a model input of [H, W, 1] or [H, W, 3], not [${inputShape.join(', ')}]`);
      return openImages(abs, files, shape);
    }
    case 'npy':
    case 'idx':
      throw dataError(files, null, null, `a ${f} file holds one array; give features and labels as an object, e.g. {"x": "x.npy", "y": "y.npy"}`);
  }
}
