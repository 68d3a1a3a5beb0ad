// A job's own data set in Redis (FLOCK_STORE=redis): when a job is created with its own data, its
// shard store folder (rows files + meta.json, server/data/store/) is copied into Redis as chunks of
// `chunkBytes` with a SHA-256 each, the manifest last (a job whose manifest is missing has no data
// in Redis); any process that opens the job later (a new owner) materialises the folder into its
// own data folder from the chunks, checking every checksum, so a local data folder is only a cache.
// Files stream chunk by chunk both ways: memory holds one chunk, never a whole data set.
//
// Keys: P:job:<id>:data:manifest (JSON), P:job:<id>:data:<n> (binary chunks, n from 0 over all files
// in manifest order). Not fenced: chunks are written before the job is recorded, and a job id is
// reused only after its chunks are deleted (JobRegistry.create).
//
// State owned: none beyond the Redis keys (and the local folder it materialises).

import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { z } from 'zod';

/** Where a materialised folder keeps the manifest it was made from (its cache key). */
export const MANIFEST_COPY = '.redis-manifest.json';
export const DEFAULT_CHUNK_BYTES = 1 << 20;

const ManifestSchema = z.object({
  formatVersion: z.literal(1),
  /** Random per upload: a local copy made from another upload of the same job id is not reused. */
  uploadId: z.string(),
  chunkBytes: z.number().int().positive(),
  files: z.array(z.object({ name: z.string(), bytes: z.number().int().nonnegative(), sha256: z.array(z.string()) })),
});
export type DataManifest = z.infer<typeof ManifestSchema>;

/** The job's data in Redis is missing or damaged: the job cannot be opened from it. */
export class SharedDataError extends Error {}

/** What JobRegistry needs of a shared home for job data (this module, in a cluster). */
export interface SharedJobData {
  /** Copies the folder `dir` into the shared store as job `jobId`'s data (replacing any). */
  put(jobId: string, dir: string): Promise<void>;
  /** Makes `dir` hold job `jobId`'s data, from the shared store unless it already does. */
  materialise(jobId: string, dir: string): Promise<'cached' | 'fetched'>;
  /** Deletes job `jobId`'s data from the shared store. */
  remove(jobId: string): Promise<void>;
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

export interface RedisJobDataOptions {
  readonly redis: Redis;
  readonly prefix: string;
  readonly chunkBytes?: number | undefined;
}

export class RedisJobData implements SharedJobData {
  private readonly chunkBytes: number;
  constructor(private readonly o: RedisJobDataOptions) {
    this.chunkBytes = o.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  }

  private key(jobId: string, what: string | number): string {
    return `${this.o.prefix}:job:${jobId}:data:${what}`;
  }

  async manifest(jobId: string): Promise<DataManifest | null> {
    const raw = await this.o.redis.get(this.key(jobId, 'manifest'));
    if (raw === null) return null;
    const parsed = ManifestSchema.safeParse(JSON.parse(raw));
    if (!parsed.success) throw new SharedDataError(`job ${jobId}: its data manifest in Redis is unreadable (${parsed.error.message})`);
    return parsed.data;
  }

  async put(jobId: string, dir: string): Promise<void> {
    await this.remove(jobId);
    const names = (await readdir(dir, { withFileTypes: true })).filter((e) => e.isFile() && e.name !== MANIFEST_COPY).map((e) => e.name).sort();
    const files: DataManifest['files'] = [];
    let n = 0;
    for (const name of names) {
      const fh = await open(path.join(dir, name), 'r');
      try {
        const bytes = (await fh.stat()).size;
        const sums: string[] = [];
        for (let at = 0; at < bytes; at += this.chunkBytes) {
          const want = Math.min(this.chunkBytes, bytes - at);
          // A fresh buffer per chunk: ioredis may still hold the previous one while it writes.
          const buf = Buffer.allocUnsafe(want);
          let got = 0;
          while (got < want) {
            const { bytesRead } = await fh.read(buf, got, want - got, at + got);
            if (bytesRead === 0) throw new Error(`${name} shrank while it was copied into Redis`);
            got += bytesRead;
          }
          sums.push(sha256(buf));
          await this.o.redis.set(this.key(jobId, n++), buf);
        }
        files.push({ name, bytes, sha256: sums });
      } finally {
        await fh.close();
      }
    }
    const manifest: DataManifest = { formatVersion: 1, uploadId: randomBytes(8).toString('hex'), chunkBytes: this.chunkBytes, files };
    // Last: a manifest names only chunks that are already there.
    await this.o.redis.set(this.key(jobId, 'manifest'), JSON.stringify(manifest));
    // The source folder is now a valid materialised copy (no fetch on this process).
    await writeFile(path.join(dir, MANIFEST_COPY), JSON.stringify(manifest));
  }

  async materialise(jobId: string, dir: string): Promise<'cached' | 'fetched'> {
    const manifest = await this.manifest(jobId);
    if (!manifest) throw new SharedDataError(`job ${jobId}: its data is not in Redis (its upload did not finish, or it was created before job data was kept there); resubmit the job`);
    const text = JSON.stringify(manifest);
    if (await this.isCopyOf(dir, manifest, text)) return 'cached';
    const part = `${dir}.part-${randomBytes(4).toString('hex')}`;
    await rm(part, { recursive: true, force: true });
    await mkdir(part, { recursive: true });
    try {
      let n = 0;
      for (const f of manifest.files) {
        const fh = await open(path.join(part, f.name), 'wx');
        try {
          let written = 0;
          for (const sum of f.sha256) {
            const chunk = await this.o.redis.getBuffer(this.key(jobId, n));
            if (!chunk) throw new SharedDataError(`job ${jobId}: chunk ${n} of its data (${f.name}) is missing from Redis`);
            if (sha256(chunk) !== sum) throw new SharedDataError(`job ${jobId}: chunk ${n} of its data (${f.name}) failed its checksum`);
            n++;
            let off = 0;
            while (off < chunk.byteLength) off += (await fh.write(chunk, off, chunk.byteLength - off, written + off)).bytesWritten;
            written += chunk.byteLength;
          }
          if (written !== f.bytes) throw new SharedDataError(`job ${jobId}: ${f.name} has ${written} bytes in Redis, its manifest says ${f.bytes}`);
        } finally {
          await fh.close();
        }
      }
      await writeFile(path.join(part, MANIFEST_COPY), text);
      await rm(dir, { recursive: true, force: true });
      await rename(part, dir);
    } catch (err) {
      await rm(part, { recursive: true, force: true });
      throw err;
    }
    return 'fetched';
  }

  /** Whether `dir` was materialised from this very manifest and still has every file at its size. */
  private async isCopyOf(dir: string, manifest: DataManifest, text: string): Promise<boolean> {
    try {
      if ((await readFile(path.join(dir, MANIFEST_COPY), 'utf8')) !== text) return false;
      for (const f of manifest.files) if ((await stat(path.join(dir, f.name))).size !== f.bytes) return false;
      return true;
    } catch {
      return false;
    }
  }

  async remove(jobId: string): Promise<void> {
    // Every key of the job's data, whether or not a manifest got written (an interrupted upload).
    // The manifest first: a reader never sees a manifest whose chunks are going.
    const r = this.o.redis;
    await r.unlink(this.key(jobId, 'manifest'));
    const pattern = this.key(jobId.replace(/[*?[\]\\]/g, (c) => `\\${c}`), '*');
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await r.unlink(...keys);
    } while (cursor !== '0');
  }
}
