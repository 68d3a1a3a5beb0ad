// Server-issued worker identities: a credential is an HMAC-SHA256 over the worker id and its issue
// time, under a secret kept in the data folder (`<dataDir>/worker-secret`, mode 0600, like the
// admin token), or with FLOCK_STORE=redis in Redis (`<prefix>:worker-secret`), shared by every
// coordinator, so a worker keeps its id through a takeover. A hello that claims an id without that id's credential gets a new id, so nobody
// can choose an id, take over another worker's, or make up many ids cheaply... but one address can
// still ask for many new ids: rules that count workers also count distinct addresses.

import { createHmac, randomBytes, timingSafeEqual, randomUUID } from 'node:crypto';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { keptSecret } from '../storage/kept-secret.ts';
import { redisKeptSecret } from '../storage/redis-kept-secret.ts';

export const WORKER_SECRET_FILE = 'worker-secret';
/** The Redis key (after the cluster's prefix) of the shared secret. */
export const WORKER_SECRET_KEY = 'worker-secret';
/** Credential text: `v1.<issuedAt base36>.<mac base64url>`; at most 128 characters on the wire. */
const FORMAT = /^v1\.([0-9a-z]{1,12})\.([A-Za-z0-9_-]{43})$/;

export class WorkerCredentials {
  constructor(private readonly secret: Buffer) {
    if (secret.byteLength < 16) throw new Error('worker secret too short');
  }

  private mac(workerId: string, issuedAt: number): Buffer {
    return createHmac('sha256', this.secret).update(`${workerId}\n${issuedAt}`).digest();
  }

  issue(workerId: string, issuedAt: number): string {
    return `v1.${issuedAt.toString(36)}.${this.mac(workerId, issuedAt).toString('base64url')}`;
  }

  /** True when `credential` was issued by this coordinator (this secret) for `workerId`. */
  verify(workerId: string, credential: string | undefined): boolean {
    if (typeof credential !== 'string') return false;
    const m = FORMAT.exec(credential);
    if (!m) return false;
    const issuedAt = parseInt(m[1]!, 36);
    const given = Buffer.from(m[2]!, 'base64url');
    const want = this.mac(workerId, issuedAt);
    return given.byteLength === want.byteLength && timingSafeEqual(given, want);
  }

  /** A new server-chosen id (the hello's claimed one is never used without its credential). */
  static newId(): string {
    return `w-${randomUUID().replaceAll('-', '').slice(0, 20)}`;
  }
}

/** Secrets are 32 random bytes, base64url (43 characters); a shorter text is empty or truncated. */
const SECRET_MIN_CHARS = 32;
const newSecret = (): string => randomBytes(32).toString('base64url');

/** The secret kept in `<dataDir>/worker-secret`, created once (0600); deleting it voids every credential. */
export function workerSecretFor(dataDir: string): Buffer {
  // Under 32 characters: empty or truncated; a new secret (earlier credentials no longer verify).
  const s = keptSecret(path.join(dataDir, WORKER_SECRET_FILE), newSecret, (t) => t.length >= SECRET_MIN_CHARS);
  return Buffer.from(s.text, 'base64url');
}

/**
 * The cluster's secret at `<prefix>:worker-secret` in Redis, created once, atomically, by whichever
 * coordinator comes first; every process and every later owner uses it. Deleting the key voids every
 * credential (the next process to start makes a new one; restart them all).
 */
export async function sharedWorkerSecret(redis: Redis, prefix: string): Promise<Buffer> {
  const s = await redisKeptSecret(redis, `${prefix}:${WORKER_SECRET_KEY}`, newSecret, SECRET_MIN_CHARS);
  return Buffer.from(s.text, 'base64url');
}
