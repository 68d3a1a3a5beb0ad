// The wire side of the aggregator: decodes a pushed gradient from its negotiated encoding into the
// one float32 vector the checks, the update log and the optimizer all read (no further copy), and
// keeps ONE weights snapshot per version, plus its encodings, shared by every lease of that version.
// Owns only the snapshot of the newest version served; older ones go when the version moves.

import { decodeVector, encodeVector, tensorSizes, type Encoding, type WeightEncoding } from '../../shared/codec/compression.ts';
import { sameSpecs, toBytes, type BinaryLike, type TensorSpec } from '../../shared/codec/tensor-codec.ts';
import { ErrorCode } from '../../shared/protocol/errors.ts';
import { checkGradient } from './gradient-check.ts';

export type DecodedGradient = { ok: true; floats: Float32Array; bytes: Uint8Array; wireBytes: number } | { ok: false; message: string };

/**
 * The float32 gradient a push stands for. f32 with aligned bytes is a view of the received buffer
 * (no copy); other encodings decode into one fresh array. Shape and values are checked afterwards
 * by the gradient check, exactly as for an uncompressed push.
 */
export function decodeGradient(specs: readonly TensorSpec[], data: BinaryLike, encoding: Encoding | undefined): DecodedGradient {
  const wire = toBytes(data);
  const r = decodeVector(encoding ?? 'f32', wire, tensorSizes(specs));
  if (!r.ok) return r;
  return { ok: true, floats: r.values, bytes: new Uint8Array(r.values.buffer, r.values.byteOffset, r.values.byteLength), wireBytes: wire.byteLength };
}

/**
 * One snapshot per version: the raw copy (evaluation, checkpoints, f32 leases) and each encoding
 * asked for; the last few versions' raw copies are kept (bounded in bytes) so that a worker holding
 * one of them can be sent an int8 delta instead of the whole model.
 */
export class WeightsSnapshots {
  private version = -1;
  private raw: Float32Array | null = null;
  private readonly encoded = new Map<WeightEncoding, Uint8Array>();
  private readonly recent = new Map<number, Float32Array>();
  private readonly deltas = new Map<number, Uint8Array>();
  /** Snapshots taken and encodings made (tests and metrics: one per version, not per lease). */
  readonly made = { snapshots: 0, encodings: 0, deltas: 0 };
  private readonly keep: number;

  constructor(
    private readonly sizes: readonly number[],
    keepBytes = 64 * 1024 * 1024,
  ) {
    const n = sizes.reduce((a, b) => a + b, 0);
    this.keep = Math.max(0, Math.min(16, Math.floor(keepBytes / Math.max(1, n * 4))));
  }

  /**
   * The weights of `version` as an int8 delta (per-tensor scale) against the kept snapshot of
   * `from`, when that is kept and the delta is smaller than `fullBytes`; else null.
   */
  delta(from: number, version: number, params: Float32Array, fullBytes: number): Uint8Array | null {
    const raw = this.snapshot(version, params);
    const base = this.recent.get(from);
    if (!base || from === version) return null;
    const n = raw.length;
    if (this.sizes.length * 4 + ((n + 3) & ~3) >= fullBytes) return null;
    let d = this.deltas.get(from);
    if (!d) {
      const diff = new Float32Array(n);
      for (let i = 0; i < n; i++) diff[i] = raw[i]! - base[i]!;
      d = encodeVector('int8', diff, this.sizes);
      this.deltas.set(from, d);
      this.made.deltas++;
    }
    return d;
  }

  /**
   * The weights of `version` as float32 (a copy of `params` taken once per version: the live vector
   * changes in place while a payload may still be queued on a socket).
   */
  snapshot(version: number, params: Float32Array): Float32Array {
    if (this.version !== version || !this.raw) {
      this.version = version;
      this.raw = params.slice();
      this.encoded.clear();
      this.deltas.clear();
      this.made.snapshots++;
      if (this.keep > 0) {
        this.recent.set(version, this.raw);
        while (this.recent.size > this.keep) this.recent.delete(this.recent.keys().next().value!);
      }
    }
    return this.raw;
  }

  /** The snapshot of `version` in `encoding`, made once per version and encoding. */
  bytes(version: number, params: Float32Array, encoding: WeightEncoding): Uint8Array {
    const raw = this.snapshot(version, params);
    if (encoding === 'f32') return new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength);
    let e = this.encoded.get(encoding);
    if (!e) {
      e = encodeVector(encoding, raw, this.sizes);
      this.encoded.set(encoding, e);
      this.made.encodings++;
    }
    return e;
  }
}

export type PushedGradient =
  | { ok: true; floats: Float32Array; bytes: Uint8Array; wireBytes: number; norm: number }
  | { ok: false; code: ErrorCode; message: string };

/** Decodes then checks (specs, length, finite, norm) a pushed gradient: what the aggregator applies or refuses. */
export function acceptGradient(expected: readonly TensorSpec[], specs: readonly TensorSpec[], data: BinaryLike, encoding: Encoding | undefined, maxNorm: number): PushedGradient {
  if (!sameSpecs(expected, specs)) return { ok: false, code: ErrorCode.SpecMismatch, message: 'gradient tensors do not match the model' };
  const decoded = decodeGradient(expected, data, encoding);
  if (!decoded.ok) return { ok: false, code: ErrorCode.SpecMismatch, message: decoded.message };
  const check = checkGradient(expected, specs, decoded.bytes, maxNorm);
  if (!check.ok) return check;
  return { ...decoded, norm: check.norm };
}
