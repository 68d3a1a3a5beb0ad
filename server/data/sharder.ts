// Pure sharding: each epoch is a seeded permutation of the training set cut into shards of
// `shardSize` examples. The permutation is recomputed from (seed, epoch), never stored.

export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function epochPermutation(count: number, seed: number, epoch: number): Uint32Array {
  const p = new Uint32Array(count);
  for (let i = 0; i < count; i++) p[i] = i;
  const rnd = mulberry32((seed * 1_000_003 + epoch * 7919) >>> 0);
  for (let i = count - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    const t = p[i]!;
    p[i] = p[j]!;
    p[j] = t;
  }
  return p;
}

export function shardCount(count: number, shardSize: number): number {
  return Math.ceil(count / shardSize);
}

/** Example indices of shard `index` within a permutation (the last shard may be short). */
export function shardIndices(perm: Uint32Array, shardSize: number, index: number): Uint32Array {
  return perm.subarray(index * shardSize, Math.min(perm.length, (index + 1) * shardSize));
}

/** Caches the current epochs' permutations (at most two epochs are open at once). */
export class Sharder {
  private cache = new Map<number, Uint32Array>();
  constructor(
    readonly count: number,
    readonly shardSize: number,
    readonly seed: number,
  ) {}
  get shardsPerEpoch(): number {
    return shardCount(this.count, this.shardSize);
  }
  indices(epoch: number, shard: number): Uint32Array {
    let p = this.cache.get(epoch);
    if (!p) {
      p = epochPermutation(this.count, this.seed, epoch);
      this.cache.set(epoch, p);
      for (const e of this.cache.keys()) if (e < epoch - 1) this.cache.delete(e);
    }
    return shardIndices(p, this.shardSize, shard);
  }
}
