// The data folder's lock: one coordinator per folder. `<dataDir>/flock.lock` is created with
// O_EXCL and holds the owner's pid, host and start time. A lock whose pid is dead on this host is
// stale (a crashed or SIGKILLed coordinator) and is taken over; the owner removes it on exit.

import { closeSync, mkdirSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const LOCK_FILE = 'flock.lock';

export interface LockOwner {
  readonly pid: number;
  readonly host: string;
  readonly startedAt: number;
}

export type LockResult = { readonly ok: true; readonly lock: DataLock; readonly tookOverFrom: LockOwner | null } | { readonly ok: false; readonly holder: LockOwner | null; readonly error: string };

export interface DataLock {
  readonly file: string;
  /** Removes the lock file if it is still ours. Idempotent; safe inside process.on('exit'). */
  release(): void;
}

/** Whether a process with this pid runs on this machine (EPERM: it does, owned by someone else). */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readOwner(file: string): LockOwner | null {
  try {
    const o = JSON.parse(readFileSync(file, 'utf8')) as Partial<LockOwner>;
    if (typeof o.pid === 'number' && typeof o.host === 'string' && typeof o.startedAt === 'number') return { pid: o.pid, host: o.host, startedAt: o.startedAt };
  } catch {
    /* unreadable or half-written: treated as no owner */
  }
  return null;
}

/** A lock file nobody could read is stale once it is older than a start-up's write (crash mid-write). */
function olderThan(file: string, ms: number): boolean {
  try {
    return Date.now() - statSync(file).mtimeMs > ms;
  } catch {
    return true;
  }
}

/** The one-line refusal a second coordinator prints. */
export function lockRefusal(dataDir: string, holder: LockOwner | null, selfHost = os.hostname()): string {
  const who = holder ? `process ${holder.pid} on ${holder.host} (started ${new Date(holder.startedAt).toISOString()})` : 'another process';
  // Another host's pid cannot be checked from here: only a person can tell that lock is stale.
  const remote = holder && holder.host !== selfHost ? ` (if it is gone, delete ${path.join(dataDir, LOCK_FILE)})` : '';
  return `data folder ${dataDir} is in use by ${who}: stop that coordinator${remote}, or set FLOCK_DATA_DIR to another folder`;
}

/**
 * Takes the lock or says who holds it. A stale lock (owner's pid dead on this host, or an
 * unreadable file older than 2 s) is removed and taken.
 */
export function acquireDataLock(dataDir: string, self: LockOwner = { pid: process.pid, host: os.hostname(), startedAt: Date.now() }, alive: (pid: number) => boolean = pidAlive): LockResult {
  mkdirSync(dataDir, { recursive: true });
  const file = path.join(dataDir, LOCK_FILE);
  let tookOverFrom: LockOwner | null = null;
  for (let attempt = 0; attempt < 3; attempt++) {
    let fd: number;
    try {
      fd = openSync(file, 'wx', 0o644);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = readOwner(file);
      const stale = holder === null ? olderThan(file, 2000) : holder.host === self.host && holder.pid !== self.pid && !alive(holder.pid);
      if (!stale) return { ok: false, holder, error: lockRefusal(dataDir, holder, self.host) };
      tookOverFrom = holder;
      try {
        unlinkSync(file);
      } catch {
        /* another starter removed it first: try again */
      }
      continue;
    }
    try {
      writeSync(fd, JSON.stringify(self) + '\n');
    } finally {
      closeSync(fd);
    }
    let released = false;
    return {
      ok: true,
      tookOverFrom,
      lock: {
        file,
        release() {
          if (released) return;
          released = true;
          const owner = readOwner(file);
          if (owner && owner.pid === self.pid && owner.startedAt === self.startedAt) {
            try {
              unlinkSync(file);
            } catch {
              /* already gone */
            }
          }
        },
      },
    };
  }
  const holder = readOwner(file);
  return { ok: false, holder, error: lockRefusal(dataDir, holder, self.host) };
}
