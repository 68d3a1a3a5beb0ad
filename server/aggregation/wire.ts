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

/** One snapshot per version: the raw copy (evaluation, checkpoints, f32 leases) and each encoding asked for. */
export class WeightsSnapshots {
  private version = -1;
  private raw: Float32Array | null = null;
  private readonly encoded = new Map<WeightEncoding, Uint8Array>();
  /** Snapshots taken and encodings made (tests and metrics: one per version, not per lease). */
  readonly made = { snapshots: 0, encodings: 0 };

  constructor(private readonly sizes: readonly number[]) {}

  /**
   * The weights of `version` as float32 (a copy of `params` taken once per version: the live vector
   * changes in place while a payload may still be queued on a socket).
   */
  snapshot(version: number, params: Float32Array): Float32Array {
    if (this.version !== version || !this.raw) {
      this.version = version;
      this.raw = params.slice();
      this.encoded.clear();
      this.made.snapshots++;
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
