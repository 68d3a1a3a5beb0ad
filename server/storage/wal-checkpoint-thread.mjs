// Worker-thread entry for WalCheckpointer (wal-checkpointer.ts): its own connection to the store's
// SQLite file, running PASSIVE WAL checkpoints when asked (they never block the writer on the main
// thread; they copy committed pages from the WAL into the database file). Answers each request with
// { ok, busy, log, checkpointed } (SQLite's wal_checkpoint result) or { ok: false, message }.
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

const db = new Database(workerData.file, { fileMustExist: true });
db.pragma('busy_timeout = 0');
parentPort.on('message', (m) => {
  if (m === 'close') {
    db.close();
    parentPort.close();
    return;
  }
  try {
    const [r] = db.pragma('wal_checkpoint(PASSIVE)');
    parentPort.postMessage({ ok: true, busy: r.busy, log: r.log, checkpointed: r.checkpointed });
  } catch (err) {
    parentPort.postMessage({ ok: false, message: err instanceof Error ? err.message : String(err) });
  }
});
