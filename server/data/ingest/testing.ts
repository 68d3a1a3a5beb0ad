// Test helpers for the ingest suites: a temp folder per test, a request with defaults, ingest +
// open the store, and a refusal check (DataError with the expected text, nothing left in outDir).

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ShardStore } from '../store/shard-store.ts';
import type { SplitName } from '../job-data.ts';
import { DataError, ingest, type IngestRequest, type IngestResult } from './index.ts';

/** Runs `fn` in a fresh temp folder, removed afterwards. */
export async function withTmp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'flock-ingest-'));
  try {
    await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

type Overrides = Partial<Omit<IngestRequest, 'model'>> & { model?: Partial<IngestRequest['model']> };

export function request(dir: string, o: Overrides): IngestRequest {
  const outDir = o.outDir ?? mkdtempSync(path.join(dir, 'out-'));
  mkdirSync(outDir, { recursive: true });
  return {
    baseDir: dir,
    data: { train: 'train.csv', label: 'y' },
    task: 'classification',
    seed: 7,
    limits: { maxDatasetBytes: 1 << 30 },
    ...o,
    outDir,
    model: { inputShape: [2], outputUnits: 2, binary: false, ...o.model },
  };
}

export interface Ingested extends IngestResult {
  /** Stored features (uint8 or float32 by the spec) and class indices or regression targets of a split. */
  rows(split: SplitName): { x: number[][]; y: number[] };
}

export async function ingestOk(req: IngestRequest): Promise<Ingested> {
  const result = await ingest(req);
  const store = ShardStore.open(req.outDir);
  try {
    assert.deepEqual(store.meta, JSON.parse(JSON.stringify(result.meta)), 'meta.json holds the returned meta');
    const f = store.spec.featureShape.reduce((a, b) => a * b, 1);
    const t = store.spec.target;
    const dump = (split: SplitName) => {
      const r = store.read(split, 0, store.count(split));
      const xs = store.spec.features.dtype === 'uint8' ? r.x : new Float32Array(r.x.buffer, r.x.byteOffset, r.x.byteLength / 4);
      const ys = t.kind === 'regression' ? new Float32Array(r.y.buffer, r.y.byteOffset, r.y.byteLength / 4) : t.dtype === 'uint8' ? r.y : new Int32Array(r.y.buffer, r.y.byteOffset, r.count);
      return { x: Array.from({ length: r.count }, (_, i) => [...xs.subarray(i * f, (i + 1) * f)]), y: [...ys] };
    };
    const rows = { train: dump('train'), test: dump('test') };
    return { ...result, rows: (s) => rows[s] };
  } finally {
    store.close();
  }
}

/** Asserts the ingest refuses with a DataError matching every pattern, and outDir is left empty. */
export async function refused(req: IngestRequest, ...patterns: RegExp[]): Promise<string> {
  let message = '';
  await assert.rejects(ingest(req), (e: unknown) => {
    assert.ok(e instanceof DataError, `expected a DataError, got ${String(e)}`);
    message = e.message;
    return true;
  });
  for (const p of patterns) assert.match(message, p);
  assert.deepEqual(readdirSync(req.outDir), [], 'outDir must be left empty');
  return message;
}

/** The float32 nearest a number: what a float32 store holds for it. */
export const f32 = (v: number): number => Math.fround(v);
