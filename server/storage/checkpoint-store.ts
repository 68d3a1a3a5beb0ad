// Checkpoints of one job on disk, in TensorFlow.js format so tf.loadLayersModel reads them:
//   <dir>/v000000123/{model.json, weights.bin, optimizer.bin, state.json}
// A checkpoint is written into a temp directory (every file fsynced) and renamed into place, so a
// crash leaves either a complete checkpoint or none. state.json carries SHA-256 checksums of the
// binaries; load() skips a checkpoint whose files are missing or do not match, and uses the previous.
// Saves take encoded checkpoints (checkpoint-encoding.ts: packed and hashed off the event loop) and
// the writes are asynchronous (libuv's pool), so the event loop only issues I/O; infos() hashes in
// the checkpoint thread.

import { mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fsyncDir, writeFileSynced } from './atomic-file.ts';
import { checksumsMatch, sha256, type EncodedCheckpoint, type StateFile } from './checkpoint-encoding.ts';
import { sharedCheckpointEncoder, type CheckpointEncoder } from './checkpoint-encoder.ts';
import type { TensorSpec } from '../../shared/codec/tensor-codec.ts';

export interface CheckpointState {
  readonly version: number;
  readonly createdAt: number;
  /** Anything the job runtime needs to resume (ledger, metrics, counters); JSON. */
  readonly runtime: unknown;
  readonly optimizer: { step: number; specs: TensorSpec[] };
}

export interface CheckpointData {
  readonly modelTopology: unknown;
  readonly weightSpecs: readonly TensorSpec[];
  readonly weights: Uint8Array;
  readonly optimizer: Uint8Array;
  readonly state: CheckpointState;
}

export interface StoredCheckpoint extends CheckpointData {
  readonly dir: string;
}

export interface CheckpointInfo {
  readonly version: number;
  readonly createdAt: number;
  readonly dir: string;
  readonly runtime: unknown;
}

const dirName = (v: number): string => `v${String(v).padStart(10, '0')}`;

export type Warn = (msg: string) => void;

/**
 * Where a job's checkpoints live: files (CheckpointStore, the default) or Redis
 * (RedisCheckpointStore, FLOCK_STORE=redis). `dir` names a checkpoint within its store.
 */
export interface Checkpoints {
  /** Writes an encoded checkpoint atomically and prunes all but the newest `keep`. */
  save(cp: EncodedCheckpoint): Promise<string>;
  /** Checkpoints, newest first (not verified). */
  list(): Promise<{ version: number; dir: string }[]>;
  /** As list(), with each one's state (those whose state reads); not verified, so a superset of infos(). */
  listInfos(): Promise<CheckpointInfo[]>;
  /** Checkpoints whose checksums verify, newest first. */
  infos(): Promise<CheckpointInfo[]>;
  /** The newest checkpoint whose checksums verify, or null. */
  loadLatest(): Promise<StoredCheckpoint | null>;
  /** One file of a listed checkpoint, as a TensorFlow.js model folder holds it (HTTP downloads). */
  file(dir: string, name: 'model.json' | 'weights.bin'): Promise<Buffer>;
}

export class CheckpointStore implements Checkpoints {
  constructor(
    readonly root: string,
    private readonly keep = 3,
    private readonly warn: Warn = (m) => console.warn(m),
    /** Fault injection only (FLOCK_FAULT_CHECKPOINT_PAUSE_MS): widens the window in which a kill lands mid-write. */
    private readonly pauseBeforeRenameMs = 0,
    /** Hashes for infos(); default: the process's checkpoint thread. */
    private readonly hasher: Pick<CheckpointEncoder, 'digest'> = sharedCheckpointEncoder(),
  ) {}

  /** Writes a checkpoint atomically and prunes all but the newest `keep`. */
  async save(cp: EncodedCheckpoint): Promise<string> {
    await mkdir(this.root, { recursive: true });
    const final = path.join(this.root, dirName(cp.version));
    const tmp = path.join(this.root, `.tmp-${dirName(cp.version)}-${randomBytes(4).toString('hex')}`);
    await mkdir(tmp);
    await Promise.all([
      writeFileSynced(path.join(tmp, 'model.json'), cp.modelJson),
      writeFileSynced(path.join(tmp, 'weights.bin'), cp.weights),
      writeFileSynced(path.join(tmp, 'optimizer.bin'), cp.optimizer),
    ]);
    // state.json last: a directory without it is never trusted.
    await writeFileSynced(path.join(tmp, 'state.json'), cp.stateJson);
    await fsyncDir(tmp);
    if (this.pauseBeforeRenameMs > 0) await new Promise((r) => setTimeout(r, this.pauseBeforeRenameMs));
    await rm(final, { recursive: true, force: true });
    await rename(tmp, final);
    await fsyncDir(this.root);
    await this.prune();
    return final;
  }

  /** Checkpoint directories, newest first (not verified). */
  async list(): Promise<{ version: number; dir: string }[]> {
    let names: string[];
    try {
      names = await readdir(this.root);
    } catch {
      return [];
    }
    return names
      .filter((n) => /^v\d{10}$/.test(n))
      .map((n) => ({ version: Number(n.slice(1)), dir: path.join(this.root, n) }))
      .sort((a, b) => b.version - a.version);
  }

  async listInfos(): Promise<CheckpointInfo[]> {
    const out: CheckpointInfo[] = [];
    for (const { dir } of await this.list()) {
      try {
        const st = JSON.parse(await readFile(path.join(dir, 'state.json'), 'utf8')) as StateFile;
        out.push({ version: st.version, createdAt: st.createdAt, dir, runtime: st.runtime });
      } catch {
        /* incomplete or damaged: no state to report */
      }
    }
    return out;
  }

  /** Checkpoints whose checksums verify (what may be served), newest first. */
  async infos(): Promise<CheckpointInfo[]> {
    const out: CheckpointInfo[] = [];
    for (const { dir } of await this.list()) {
      if (!(await this.verified(dir))) continue;
      try {
        const st = JSON.parse(await readFile(path.join(dir, 'state.json'), 'utf8')) as StateFile;
        out.push({ version: st.version, createdAt: st.createdAt, dir, runtime: st.runtime });
      } catch {
        /* incomplete: not listed */
      }
    }
    return out;
  }

  /** Verification results keyed by directory + the files' sizes and mtimes (re-checked when they change). */
  private readonly verifiedCache = new Map<string, { key: string; ok: boolean }>();

  private async verified(dir: string): Promise<boolean> {
    let key: string;
    try {
      const stats = await Promise.all(['state.json', 'model.json', 'weights.bin', 'optimizer.bin'].map((f) => stat(path.join(dir, f))));
      key = stats.map((s) => `${s.size}:${s.mtimeMs}`).join('|');
    } catch {
      return false;
    }
    const hit = this.verifiedCache.get(dir);
    if (hit?.key === key) return hit.ok;
    const ok = await this.check(dir);
    this.verifiedCache.set(dir, { key, ok });
    if (this.verifiedCache.size > 64) this.verifiedCache.delete(this.verifiedCache.keys().next().value!);
    return ok;
  }

  /** Whether a checkpoint's files match their checksums, hashed in the checkpoint thread (warns as read() does). */
  private async check(dir: string): Promise<boolean> {
    try {
      const [stateRaw, model, weights, optimizer] = await Promise.all(['state.json', 'model.json', 'weights.bin', 'optimizer.bin'].map((f) => readFile(path.join(dir, f))));
      const st = JSON.parse(stateRaw!.toString('utf8')) as StateFile;
      if (checksumsMatch(st, await this.hasher.digest([weights!, optimizer!, model!]))) return true;
      this.warn(`checkpoint ${dir} failed its checksum; using an older one`);
    } catch (err) {
      this.warn(`checkpoint ${dir} is unreadable (${(err as Error).message}); using an older one`);
    }
    return false;
  }

  file(dir: string, name: 'model.json' | 'weights.bin'): Promise<Buffer> {
    return readFile(path.join(dir, name));
  }

  /** The newest checkpoint whose checksums verify, or null. Corrupt ones are reported and skipped. */
  async loadLatest(): Promise<StoredCheckpoint | null> {
    for (const { dir } of await this.list()) {
      const cp = await this.read(dir);
      if (cp) return cp;
    }
    return null;
  }

  async read(dir: string): Promise<StoredCheckpoint | null> {
    try {
      const [stateRaw, modelRaw, weights, optimizer] = await Promise.all([
        readFile(path.join(dir, 'state.json'), 'utf8'),
        readFile(path.join(dir, 'model.json'), 'utf8'),
        readFile(path.join(dir, 'weights.bin')),
        readFile(path.join(dir, 'optimizer.bin')),
      ]);
      const st = JSON.parse(stateRaw) as StateFile;
      // Hashed here: the bytes are needed on this thread (start-up), not the hot path.
      if (!checksumsMatch(st, [sha256(weights), sha256(optimizer), sha256(modelRaw)])) {
        this.warn(`checkpoint ${dir} failed its checksum; using an older one`);
        return null;
      }
      const model = JSON.parse(modelRaw) as { modelTopology: unknown; weightsManifest: { weights: TensorSpec[] }[] };
      return {
        dir,
        modelTopology: model.modelTopology,
        weightSpecs: model.weightsManifest[0]?.weights ?? [],
        weights: new Uint8Array(weights.buffer, weights.byteOffset, weights.byteLength),
        optimizer: new Uint8Array(optimizer.buffer, optimizer.byteOffset, optimizer.byteLength),
        state: { version: st.version, createdAt: st.createdAt, runtime: st.runtime, optimizer: st.optimizer },
      };
    } catch (err) {
      this.warn(`checkpoint ${dir} is unreadable (${(err as Error).message}); using an older one`);
      return null;
    }
  }

  private async prune(): Promise<void> {
    const all = await this.list();
    for (const old of all.slice(this.keep)) await rm(old.dir, { recursive: true, force: true });
    // Leftover temp directories from a crash mid-write (saves are serialized, so none is live).
    for (const n of await readdir(this.root)) {
      if (n.startsWith('.tmp-')) await rm(path.join(this.root, n), { recursive: true, force: true });
    }
  }
}
