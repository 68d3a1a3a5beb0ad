// The admin token kept in the data folder (`<dataDir>/admin-token`, mode 0600): generated at the
// first start and reused at every later one, so the printed dashboard URL stays valid across
// restarts. Delete the file to rotate it; FLOCK_ADMIN_TOKEN overrides it (the file is left alone).

import { chmodSync, openSync, readFileSync, unlinkSync, writeSync, closeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';

export const ADMIN_TOKEN_FILE = 'admin-token';

export interface AdminTokenSource {
  readonly token: string;
  readonly from: 'env' | 'file' | 'generated';
  readonly file: string;
}

/** The token to use: FLOCK_ADMIN_TOKEN, else the kept one, else a new one written with mode 0600. */
export function adminTokenFor(dataDir: string, fromEnv: string | undefined): AdminTokenSource {
  const file = path.join(dataDir, ADMIN_TOKEN_FILE);
  if (fromEnv) return { token: fromEnv, from: 'env', file };
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const kept = readFileSync(file, 'utf8').trim();
      if (kept) {
        chmodSync(file, 0o600); // tighten a copy restored with looser permissions
        return { token: kept, from: 'file', file };
      }
      unlinkSync(file); // empty: write a new one
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const token = randomBytes(18).toString('base64url');
    let fd: number;
    try {
      fd = openSync(file, 'wx', 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw err;
    }
    try {
      writeSync(fd, token + '\n');
    } finally {
      closeSync(fd);
    }
    chmodSync(file, 0o600); // the umask cannot loosen it, but be explicit
    return { token, from: 'generated', file };
  }
  throw new Error(`cannot read or create ${file}`);
}
