// Writes a shard store: rows appended to train.x/.y and test.x/.y through 1 MiB buffers, meta.json
// last (a store without meta.json is incomplete). Owns the open files; `abort` removes all it wrote.

import { closeSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import type { SplitName } from '../job-data.ts';
import { STORE_FILES, type StoreMeta } from './store-meta.ts';

const BUFFER_BYTES = 1 << 20;

class RowFile {
  private readonly fd: number;
  private readonly buf = new Uint8Array(BUFFER_BYTES);
  private used = 0;
  private closed = false;

  constructor(file: string) {
    this.fd = openSync(file, 'wx');
  }

  write(bytes: Uint8Array): void {
    if (this.used + bytes.byteLength > this.buf.byteLength) this.flush();
    if (bytes.byteLength > this.buf.byteLength) writeSync(this.fd, bytes);
    else {
      this.buf.set(bytes, this.used);
      this.used += bytes.byteLength;
    }
  }

  flush(): void {
    let off = 0;
    while (off < this.used) off += writeSync(this.fd, this.buf, off, this.used - off);
    this.used = 0;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.flush();
    } finally {
      closeSync(this.fd);
    }
  }
}

export class StoreWriter {
  private readonly files: Record<SplitName, { x: RowFile; y: RowFile }> | null = null;
  private readonly written: string[] = [];

  constructor(private readonly dir: string) {
    const open = (name: string) => {
      const p = path.join(dir, name);
      const f = new RowFile(p);
      this.written.push(p);
      return f;
    };
    try {
      this.files = {
        train: { x: open(STORE_FILES.train.x), y: open(STORE_FILES.train.y) },
        test: { x: open(STORE_FILES.test.x), y: open(STORE_FILES.test.y) },
      };
    } catch (e) {
      this.abort();
      throw e;
    }
  }

  push(split: SplitName, x: Uint8Array, y: Uint8Array): void {
    const f = this.files![split];
    f.x.write(x);
    f.y.write(y);
  }

  finish(meta: StoreMeta): void {
    for (const s of Object.values(this.files!)) s.x.close(), s.y.close();
    const p = path.join(this.dir, STORE_FILES.meta);
    this.written.push(p);
    writeFileSync(p, JSON.stringify(meta), { flag: 'wx' }); // compact: an image's feature list is long
  }

  /** Removes every file this writer created (closing what is still open). */
  abort(): void {
    if (this.files) {
      for (const s of Object.values(this.files)) {
        for (const f of [s.x, s.y]) {
          try {
            f.close();
          } catch {
            // the file is removed below whatever its last write did
          }
        }
      }
    }
    for (const p of this.written) rmSync(p, { force: true });
  }
}
