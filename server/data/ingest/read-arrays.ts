// Named-array readers: .npz (several arrays in one zip), .npy and IDX (one array a file). Each array
// is [N, ...]: row i of every array is one example, a scalar for rank 1 and a flat list otherwise.
// Whole arrays are held in memory (these formats cannot be read partially without a custom parser).

import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { unzipSync } from 'fflate';
import { parse as parseNpy } from 'npyjs';
import { parseIdx } from '../idx.ts';
import { dataError } from './data-error.ts';
import type { Source, SourceRow } from './source.ts';

export interface NamedArray {
  readonly name: string;
  readonly file: string;
  readonly shape: readonly number[];
  readonly data: ArrayLike<unknown>;
  readonly bytes: boolean;
}

const exact = (u8: Uint8Array): ArrayBuffer => u8.buffer.slice(u8.byteOffset, u8.byteOffset + u8.byteLength) as ArrayBuffer;

export function npyArray(name: string, file: string, u8: Uint8Array): NamedArray {
  const header = new TextDecoder().decode(u8.subarray(0, Math.min(u8.byteLength, 512)));
  if (/'descr'\s*:\s*'>/.test(header)) throw dataError(file, null, null, 'the array is big-endian; save it little-endian (numpy: a.astype("<f4"))');
  if (/'fortran_order'\s*:\s*True/.test(header)) throw dataError(file, null, null, 'the array is in Fortran order; save np.ascontiguousarray(a)');
  let a;
  try {
    a = parseNpy(exact(u8));
  } catch (e) {
    throw dataError(file, null, null, `not a readable .npy array (${(e as Error).message})`);
  }
  return { name, file, shape: a.shape, data: a.data as unknown as ArrayLike<unknown>, bytes: a.dtype === 'u1' };
}

export async function readNpz(path: string, file: string): Promise<NamedArray[]> {
  let entries;
  try {
    entries = unzipSync(await readFile(path));
  } catch (e) {
    throw dataError(file, null, null, `not a readable .npz archive (${(e as Error).message})`);
  }
  return Object.entries(entries)
    .filter(([n]) => n.endsWith('.npy'))
    .map(([n, u8]) => npyArray(n.slice(0, -4), `${file}:${n}`, u8));
}

export async function readIdx(name: string, path: string, file: string): Promise<NamedArray> {
  try {
    const raw = await readFile(path);
    const a = parseIdx(/\.gz$/i.test(path) ? gunzipSync(raw) : raw);
    return { name, file, shape: a.shape, data: a.data, bytes: a.type === 'uint8' };
  } catch (e) {
    throw dataError(file, null, null, `not a readable IDX file (${(e as Error).message})`);
  }
}

/** Arrays of one split as a table: column = array name. All must have the same length. */
export function arraysSource(format: 'npz' | 'npy' | 'idx', file: string, arrays: readonly NamedArray[]): Source {
  const n = arrays[0]?.shape[0] ?? 0;
  for (const a of arrays) {
    if (a.shape.length === 0) throw dataError(a.file, null, null, 'the array is a scalar; it needs one entry per example');
    if (a.shape[0] !== n) throw dataError(a.file, null, null, `the array has ${a.shape[0]} entries but "${arrays[0]!.name}" has ${n}`);
  }
  const widths = arrays.map((a) => a.shape.slice(1).reduce((x, y) => x * y, 1));
  const cell = (a: NamedArray, w: number, i: number): unknown => {
    if (a.shape.length === 1) return a.data[i];
    const d = a.data as ArrayLike<unknown> & { subarray?: (s: number, e: number) => unknown; slice: (s: number, e: number) => unknown };
    return d.subarray ? d.subarray(i * w, (i + 1) * w) : d.slice(i * w, (i + 1) * w);
  };
  return {
    format,
    file,
    columns: arrays.map((a) => a.name),
    columnFiles: new Map(arrays.map((a) => [a.name, a.file])),
    rowCount: n,
    byteColumns: new Set(arrays.filter((a) => a.bytes).map((a) => a.name)),
    async *rows(): AsyncIterable<SourceRow> {
      for (let i = 0; i < n; i++) yield { cells: arrays.map((a, j) => cell(a, widths[j]!, i)), where: `row ${i + 1}` };
    },
  };
}
