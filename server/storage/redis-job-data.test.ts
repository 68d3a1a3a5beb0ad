// RedisJobData: a job's data folder copied into Redis as checksummed chunks and materialised back
// byte for byte; a damaged chunk is refused (and leaves nothing half-written), a materialised copy
// is reused until the data in Redis changes, and remove() leaves no key behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { MANIFEST_COPY, RedisJobData, SharedDataError } from './redis-job-data.ts';
import { redisPerFile } from './testing/redis-server.ts';

const { skip, server } = redisPerFile();

/** Deterministic bytes: file f, byte i. */
const bytesOf = (f: number, n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 31 + f * 7) & 0xff);

test('job data in Redis: chunked round trip, checksum refusal, cached copy, remove', { skip }, async () => {
  const r = new Redis(server().url);
  const root = await mkdtemp(path.join(tmpdir(), 'flock-jobdata-'));
  try {
    const src = path.join(root, 'src');
    await mkdir(src);
    // Empty, shorter than a chunk, exactly one chunk, two and a half chunks.
    const sizes: Record<string, number> = { 'empty.y': 0, 'meta.json': 300, 'test.x': 1024, 'train.x': 2560 };
    for (const [i, [name, n]] of Object.entries(sizes).entries()) await writeFile(path.join(src, name), bytesOf(i, n));
    const store = new RedisJobData({ redis: r, prefix: 'jd', chunkBytes: 1024 });
    await store.put('job-1', src);

    const manifest = (await store.manifest('job-1'))!;
    assert.deepEqual(manifest.files.map((f) => [f.name, f.bytes, f.sha256.length]), [['empty.y', 0, 0], ['meta.json', 300, 1], ['test.x', 1024, 1], ['train.x', 2560, 3]]);
    const chunkKeys = (await r.keys('jd:job:job-1:data:*')).filter((k) => !k.endsWith(':manifest'));
    assert.equal(chunkKeys.length, 5);
    for (const k of chunkKeys) assert.ok((await r.strlen(k)) <= 1024, `${k} is one chunk at most`);
    // The source folder is a valid copy itself: materialising there fetches nothing.
    assert.equal(await store.materialise('job-1', src), 'cached');

    const copy = path.join(root, 'node-b', 'data');
    assert.equal(await store.materialise('job-1', copy), 'fetched');
    for (const name of Object.keys(sizes)) assert.deepEqual(await readFile(path.join(copy, name)), await readFile(path.join(src, name)), name);
    assert.equal(await store.materialise('job-1', copy), 'cached');

    // A damaged chunk (the second of train.x) is refused; no folder, no leftover part.
    const damaged = path.join(root, 'node-c', 'data');
    await r.setrange('jd:job:job-1:data:3', 10, 'X');
    await assert.rejects(store.materialise('job-1', damaged), (e: Error) => e instanceof SharedDataError && /chunk 3 of its data \(train\.x\) failed its checksum/.test(e.message));
    assert.equal(existsSync(damaged), false);
    assert.deepEqual(await readdir(path.join(root, 'node-c')), []);

    // Put again (a new upload of the id): the old copy is not reused.
    await store.put('job-1', src);
    assert.equal(await store.materialise('job-1', copy), 'fetched');
    assert.equal(JSON.parse(await readFile(path.join(copy, MANIFEST_COPY), 'utf8')).uploadId, (await store.manifest('job-1'))!.uploadId);

    // Remove: no key of the job's data is left; other jobs' keys are untouched.
    await store.put('job-2', src);
    await store.remove('job-1');
    assert.deepEqual(await r.keys('jd:job:job-1:*'), []);
    assert.equal((await r.keys('jd:job:job-2:data:*')).length, 6);
    await assert.rejects(store.materialise('job-1', path.join(root, 'node-d', 'data')), /its data is not in Redis/);
  } finally {
    r.disconnect();
    await rm(root, { recursive: true, force: true });
  }
});
