// The on-disk JobData: a store written by the ingest (train.x/.y, test.x/.y of fixed-size rows and
// meta.json). Owns four open file descriptors; a lease's rows are read with positional reads,
// adjacent rows in one read, so memory holds only the rows asked for.

import { closeSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import path from 'node:path';
import type { DataSpec } from '../../../shared/data/data-spec.ts';
import { featureRowBytes, targetRowBytes } from '../../../shared/data/data-spec.ts';
import type { JobData, Rows, SplitName } from '../job-data.ts';
import { STORE_FILES, StoreMetaSchema, type StoreMeta } from './store-meta.ts';

interface SplitFiles {
  readonly x: number;
  readonly y: number;
  readonly count: number;
}

function readFully(fd: number, into: Uint8Array, at: number, bytes: number, position: number): void {
  let done = 0;
  while (done < bytes) {
    const n = readSync(fd, into, at + done, bytes - done, position + done);
    if (n === 0) throw new Error(`shard store: unexpected end of file at byte ${position + done}`);
    done += n;
  }
}

export class ShardStore implements JobData {
  readonly spec: DataSpec;
  private readonly xRow: number;
  private readonly yRow: number;
  private open_ = true;

  private constructor(
    readonly meta: StoreMeta,
    private readonly splits: Record<SplitName, SplitFiles>,
  ) {
    this.spec = meta.spec;
    this.xRow = featureRowBytes(meta.spec);
    this.yRow = targetRowBytes(meta.spec.target);
  }

  /** Opens a store, checking meta.json and that every file holds exactly its rows. */
  static open(dir: string): ShardStore {
    const meta = StoreMetaSchema.parse(JSON.parse(readFileSync(path.join(dir, STORE_FILES.meta), 'utf8'))) as StoreMeta;
    const rowBytes = { x: featureRowBytes(meta.spec), y: targetRowBytes(meta.spec.target) };
    const fds: number[] = [];
    try {
      const split = (s: SplitName): SplitFiles => {
        const fd = (k: 'x' | 'y') => {
          const file = path.join(dir, STORE_FILES[s][k]);
          const f = openSync(file, 'r');
          fds.push(f);
          const want = meta.counts[s] * rowBytes[k];
          const size = fstatSync(f).size;
          if (size !== want) throw new Error(`shard store: ${file} has ${size} bytes, meta.json says ${meta.counts[s]} rows of ${rowBytes[k]} = ${want}`);
          return f;
        };
        return { x: fd('x'), y: fd('y'), count: meta.counts[s] };
      };
      return new ShardStore(meta, { train: split('train'), test: split('test') });
    } catch (e) {
      for (const f of fds) closeSync(f);
      throw e;
    }
  }

  count(split: SplitName): number {
    return this.splits[split].count;
  }

  private files(split: SplitName): SplitFiles {
    if (!this.open_) throw new Error('shard store: closed');
    return this.splits[split];
  }

  gather(split: SplitName, indices: ArrayLike<number>): Rows {
    const s = this.files(split);
    const n = indices.length;
    const x = new Uint8Array(n * this.xRow);
    const y = new Uint8Array(n * this.yRow);
    for (let i = 0; i < n; ) {
      const first = indices[i]!;
      if (!Number.isInteger(first) || first < 0 || first >= s.count) throw new RangeError(`shard store: row ${first} outside ${split} [0, ${s.count})`);
      let run = 1;
      while (i + run < n && indices[i + run] === first + run && first + run < s.count) run++;
      readFully(s.x, x, i * this.xRow, run * this.xRow, first * this.xRow);
      readFully(s.y, y, i * this.yRow, run * this.yRow, first * this.yRow);
      i += run;
    }
    return { x, y, count: n };
  }

  read(split: SplitName, start: number, end: number): Rows {
    const s = this.files(split);
    if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > s.count || start > end) {
      throw new RangeError(`shard store: rows [${start}, ${end}) outside ${split} [0, ${s.count})`);
    }
    const n = end - start;
    const x = new Uint8Array(n * this.xRow);
    const y = new Uint8Array(n * this.yRow);
    readFully(s.x, x, 0, x.byteLength, start * this.xRow);
    readFully(s.y, y, 0, y.byteLength, start * this.yRow);
    return { x, y, count: n };
  }

  close(): void {
    if (!this.open_) return;
    this.open_ = false;
    for (const s of Object.values(this.splits)) closeSync(s.x), closeSync(s.y);
  }
}
