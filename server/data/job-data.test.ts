import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import { fixture, runJobDataContract } from './job-data.contract.ts';
import { memoryJobData } from './job-data.ts';
import { ShardStore } from './store/shard-store.ts';
import { StoreWriter } from './store/store-writer.ts';

runJobDataContract('memory', () => memoryJobData(fixture));

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

runJobDataContract('shard store', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'flock-jobdata-'));
  dirs.push(dir);
  const mem = memoryJobData(fixture);
  const w = new StoreWriter(dir);
  for (const s of ['train', 'test'] as const) {
    for (let r = 0; r < fixture[s].count; r++) w.push(s, fixture[s].x.subarray(r * 4, r * 4 + 4), fixture[s].y.subarray(r, r + 1));
  }
  w.finish({
    formatVersion: 1,
    spec: mem.spec,
    counts: { train: fixture.train.count, test: fixture.test.count },
    featureNames: ['p0', 'p1', 'p2', 'p3'],
    preprocessing: { rawColumns: ['pixels'], oneHot: [], standardize: [], scale: [] },
    labels: { columns: ['label'] },
    sources: { train: 'fixture', test: 'fixture', validationSplit: null },
  });
  return ShardStore.open(dir);
});
