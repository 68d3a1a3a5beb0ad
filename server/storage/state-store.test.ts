// Runs the StateStore contract against every implementation: memory, SQLite, and Redis (a private
// redis-server per file; skipped, saying why, where redis-server is not installed).
import { after, before } from 'node:test';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runStateStoreContract } from './state-store.contract.ts';
import { MemoryStateStore } from './memory-state-store.ts';
import { SqliteStateStore } from './sqlite-state-store.ts';
import { RedisStateStore } from './redis-state-store.ts';
import { redisMissing, startRedis, type RedisFixture } from './testing/redis-server.ts';

runStateStoreContract('memory', () => new MemoryStateStore());

let file = '';
runStateStoreContract(
  'sqlite',
  () => {
    file = path.join(mkdtempSync(path.join(tmpdir(), 'flock-sqlite-')), 'state.db');
    return new SqliteStateStore(file);
  },
  (s) => {
    s.close();
    return new SqliteStateStore(file);
  },
);

const skip = redisMissing();
let redis: RedisFixture | null = null;
let n = 0;
let prefix = '';
before(async () => {
  if (!skip) redis = await startRedis();
});
after(async () => {
  await redis?.stop();
});
runStateStoreContract(
  'redis',
  () => {
    prefix = `t${++n}`;
    return RedisStateStore.open(redis!.url, { prefix });
  },
  async (s) => {
    s.close();
    // A killed and restarted redis-server: what was answered must come back from the AOF.
    await redis!.restart();
    return RedisStateStore.open(redis!.url, { prefix });
  },
  { skip },
);
