// Checkpoints of one job in Redis (FLOCK_STORE=redis), so a process taking a job over needs nothing
// on its own disk. Same contract as the file store (checkpoint-store.ts): a save is all or nothing
// (one Lua script), the newest `keep` are kept, state carries SHA-256 checksums and a checkpoint
// that fails them is skipped for an older one. Saves carry the owner's fencing token (the state
// store's), so a former owner can never publish weights that include updates it could not log.
// Saves take encoded checkpoints (checkpoint-encoding.ts: packed and hashed off the event loop), and
// infos() hashes the kept entries in the checkpoint thread.
//
// Keys: P:job:<id>:cp:<kind> (sorted set of versions), P:job:<id>:cp:<kind>:<version> (hash:
// model, weights, optimizer, state).

import type { Redis } from 'ioredis';
import type { CheckpointInfo, Checkpoints, StoredCheckpoint, Warn } from './checkpoint-store.ts';
import { checksumsMatch, sha256, type EncodedCheckpoint, type StateFile } from './checkpoint-encoding.ts';
import { sharedCheckpointEncoder, type CheckpointEncoder } from './checkpoint-encoder.ts';
import type { TensorSpec } from '../../shared/codec/tensor-codec.ts';
import { FencedError } from './redis-state-store.ts';

const SAVE = `
if ARGV[1] ~= '' then
  local cur = redis.call('GET', KEYS[1])
  if cur ~= ARGV[1] then return redis.error_reply('FENCED token ' .. ARGV[1] .. ' is stale (newest ' .. tostring(cur) .. ')') end
end
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[3], 'model', ARGV[3], 'weights', ARGV[4], 'optimizer', ARGV[5], 'state', ARGV[6])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[2])
local old = redis.call('ZREVRANGE', KEYS[2], tonumber(ARGV[7]), -1)
for _, v in ipairs(old) do
  redis.call('DEL', ARGV[8] .. v)
  redis.call('ZREM', KEYS[2], v)
end
return 1
`;

type Scripted = Redis & { flockCpSave(...args: (string | Buffer)[]): Promise<number> };

const bytes = (b: Buffer): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);

export interface RedisCheckpointDeps {
  readonly redis: Redis;
  readonly prefix: string;
  readonly jobId: string;
  /** 'rotation' (keep-last-N) or 'best'. */
  readonly kind: string;
  readonly keep: number;
  /** The fencing counter key and this process's token (null: unfenced), read at every save; may throw FencedError. */
  readonly fence: () => { key: string; token: number | null };
  /** Told when Redis refuses a save for a stale token (a newer owner exists). */
  readonly onFenced?: ((err: FencedError) => void) | undefined;
  readonly warn?: Warn | undefined;
  /** Hashes for infos(); default: the process's checkpoint thread. */
  readonly hasher?: Pick<CheckpointEncoder, 'digest'> | undefined;
}

export class RedisCheckpointStore implements Checkpoints {
  private readonly r: Scripted;
  private readonly hasher: Pick<CheckpointEncoder, 'digest'>;
  constructor(private readonly d: RedisCheckpointDeps) {
    this.r = d.redis as Scripted;
    this.hasher = d.hasher ?? sharedCheckpointEncoder();
    if (typeof (this.r as { flockCpSave?: unknown }).flockCpSave !== 'function') d.redis.defineCommand('flockCpSave', { numberOfKeys: 3, lua: SAVE });
  }

  private get setKey(): string {
    return `${this.d.prefix}:job:${this.d.jobId}:cp:${this.d.kind}`;
  }
  /** A checkpoint's "dir": its hash key (what list/infos name it by). */
  private entryKey(version: number | string): string {
    return `${this.setKey}:${version}`;
  }

  async save(cp: EncodedCheckpoint): Promise<string> {
    const f = this.d.fence();
    const key = this.entryKey(cp.version);
    const buf = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);
    try {
      await this.r.flockCpSave(f.key, this.setKey, key, f.token === null ? '' : String(f.token), String(cp.version), cp.modelJson, buf(cp.weights), buf(cp.optimizer), cp.stateJson, String(this.d.keep), `${this.setKey}:`);
    } catch (err) {
      const msg = (err as Error).message;
      if (!msg.includes('FENCED')) throw err;
      const fenced = new FencedError(msg, f.token);
      this.d.onFenced?.(fenced);
      throw fenced;
    }
    return key;
  }

  async list(): Promise<{ version: number; dir: string }[]> {
    const vs = await this.r.zrevrange(this.setKey, 0, -1);
    return vs.map((v) => ({ version: Number(v), dir: this.entryKey(v) }));
  }

  async listInfos(): Promise<CheckpointInfo[]> {
    const out: CheckpointInfo[] = [];
    for (const { dir } of await this.list()) {
      try {
        const raw = await this.r.hget(dir, 'state');
        if (raw === null) continue;
        const st = JSON.parse(raw) as StateFile;
        out.push({ version: st.version, createdAt: st.createdAt, dir, runtime: st.runtime });
      } catch {
        /* damaged: no state to report */
      }
    }
    return out;
  }

  async infos(): Promise<CheckpointInfo[]> {
    const out: CheckpointInfo[] = [];
    for (const { dir } of await this.list()) {
      try {
        const [model, weights, optimizer, stateRaw] = await this.r.hmgetBuffer(dir, 'model', 'weights', 'optimizer', 'state');
        if (!model || !weights || !optimizer || !stateRaw) continue;
        const st = JSON.parse(stateRaw.toString('utf8')) as StateFile;
        if (!checksumsMatch(st, await this.hasher.digest([weights, optimizer, model]))) {
          this.d.warn?.(`checkpoint ${dir} failed its checksum; using an older one`);
          continue;
        }
        out.push({ version: st.version, createdAt: st.createdAt, dir, runtime: st.runtime });
      } catch (err) {
        this.d.warn?.(`checkpoint ${dir} is unreadable (${(err as Error).message}); using an older one`);
      }
    }
    return out;
  }

  async loadLatest(): Promise<StoredCheckpoint | null> {
    for (const { dir } of await this.list()) {
      const cp = await this.read(dir);
      if (cp) return cp;
    }
    return null;
  }

  async file(dir: string, name: 'model.json' | 'weights.bin'): Promise<Buffer> {
    const b = await this.r.hgetBuffer(dir, name === 'model.json' ? 'model' : 'weights');
    if (!b) throw new Error(`checkpoint ${dir} has no ${name}`);
    return b;
  }

  async read(dir: string): Promise<StoredCheckpoint | null> {
    try {
      const [model, weights, optimizer, stateRaw] = await this.r.hmgetBuffer(dir, 'model', 'weights', 'optimizer', 'state');
      if (!model || !weights || !optimizer || !stateRaw) return null;
      const st = JSON.parse(stateRaw.toString('utf8')) as StateFile;
      const modelText = model.toString('utf8');
      // Hashed here: the bytes are needed on this thread (start-up, takeover), not the hot path.
      if (!checksumsMatch(st, [sha256(weights), sha256(optimizer), sha256(modelText)])) {
        this.d.warn?.(`checkpoint ${dir} failed its checksum; using an older one`);
        return null;
      }
      const m = JSON.parse(modelText) as { modelTopology: unknown; weightsManifest: { weights: TensorSpec[] }[] };
      return {
        dir, modelTopology: m.modelTopology, weightSpecs: m.weightsManifest[0]?.weights ?? [], weights: bytes(weights), optimizer: bytes(optimizer),
        state: { version: st.version, createdAt: st.createdAt, runtime: st.runtime, optimizer: st.optimizer },
      };
    } catch (err) {
      this.d.warn?.(`checkpoint ${dir} is unreadable (${(err as Error).message}); using an older one`);
      return null;
    }
  }
}
