// The admin token kept in the data folder (`<dataDir>/admin-token`, mode 0600): generated at the
// first start and reused at every later one, so the printed dashboard URL stays valid across
// restarts. Delete the file to rotate it; FLOCK_ADMIN_TOKEN overrides it (the file is left alone).

import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { keptSecret } from '../storage/kept-secret.ts';

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
  const s = keptSecret(file, () => randomBytes(18).toString('base64url'), (t) => t.length > 0);
  return { token: s.text, from: s.kept ? 'file' : 'generated', file };
}
