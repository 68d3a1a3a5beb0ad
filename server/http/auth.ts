// Admin authentication: a bearer token compared in constant time. The token comes from
// FLOCK_ADMIN_TOKEN or is generated at start-up and printed with the dashboard URL.

import { timingSafeEqual, createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

export function tokenMatches(expected: string, given: string | undefined | null): boolean {
  if (!given) return false;
  return timingSafeEqual(digest(expected), digest(given));
}

export function bearerOf(req: IncomingMessage): string | null {
  const h = req.headers.authorization;
  if (!h) return null;
  const m = /^Bearer\s+(.+)$/i.exec(h);
  return m ? m[1]!.trim() : null;
}
