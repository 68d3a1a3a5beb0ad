// A secret kept in Redis, shared by every coordinator of a cluster (FLOCK_STORE=redis): read when a
// valid one is there, else generated and stored in one Lua script, so processes starting together
// (or a follower taking over) agree on one. The Redis counterpart of kept-secret.ts (a file in the
// data folder, for a single coordinator); durable as Redis's AOF setting makes it.

import type { Redis } from 'ioredis';

// KEYS[1] the secret; ARGV[1] a fresh candidate, ARGV[2] the minimum valid length. Atomic: a valid
// value is never replaced, an absent or invalid (truncated) one is replaced by the candidate.
const KEEP = `
local v = redis.call('GET', KEYS[1])
if v and string.len(v) >= tonumber(ARGV[2]) then return {v, 1} end
redis.call('SET', KEYS[1], ARGV[1])
return {ARGV[1], 0}
`;

/** The text kept at `key` when at least `minLength` long, else `make()` stored there. `kept` says which. */
export async function redisKeptSecret(redis: Redis, key: string, make: () => string, minLength: number): Promise<{ text: string; kept: boolean }> {
  const candidate = make();
  if (candidate.length < minLength) throw new Error(`a new secret for ${key} is shorter than ${minLength} characters`);
  const [text, kept] = (await redis.eval(KEEP, 1, key, candidate, String(minLength))) as [string, number];
  return { text, kept: kept === 1 };
}
