// Runs the StateStore contract against every implementation.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runStateStoreContract } from './state-store.contract.ts';
import { MemoryStateStore } from './memory-state-store.ts';
import { SqliteStateStore } from './sqlite-state-store.ts';

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
