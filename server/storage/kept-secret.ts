// A secret kept in the data folder (mode 0600): read when a valid one is there, else generated once
// and written with O_EXCL, so two processes starting together agree on one. Used for the admin token
// (http/admin-token-file.ts) and the worker-credential secret (security/credentials.ts).

import { chmodSync, closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';

/**
 * The text kept in `file` when `valid(text)`, else a new `make()` written there. `kept` says which.
 * An invalid (empty, truncated) file is replaced.
 */
export function keptSecret(file: string, make: () => string, valid: (text: string) => boolean): { text: string; kept: boolean } {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const text = readFileSync(file, 'utf8').trim();
      if (valid(text)) {
        chmodSync(file, 0o600); // tighten a copy restored with looser permissions
        return { text, kept: true };
      }
      unlinkSync(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const text = make();
    let fd: number;
    try {
      fd = openSync(file, 'wx', 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue; // another process wrote it first
      throw err;
    }
    try {
      writeSync(fd, text + '\n');
    } finally {
      closeSync(fd);
    }
    chmodSync(file, 0o600); // the umask cannot loosen it, but be explicit
    return { text, kept: false };
  }
  throw new Error(`cannot read or create ${file}`);
}
