// Wire compression of float32 vectors (weights down, gradients up), per job and negotiated per
// worker. Every encoding describes the same logical tensors (float32 TensorSpec[] laid end to end)
// and decodes back to one Float32Array, so the server's aggregation path never sees the encoding.
//
// Byte layouts (little-endian; n = total elements, T = number of tensors; every total padded to 4):
//   f32   n float32
//   f16   n IEEE half floats (round to nearest even; finite values beyond +-65504 clamp to it)
//   int8  T float32 scales (max |x| / 127 of each tensor), then n int8: x ~= q * scale
//   topk  uint32 k, k uint32 indices (strictly ascending, < n), k half-float values; all others 0

import { sizeOf, type TensorSpec } from './tensor-codec.ts';

export const ENCODINGS = ['f32', 'f16', 'int8', 'topk'] as const;
export type Encoding = (typeof ENCODINGS)[number];
/** Weights are never sparsified: a worker must hold every weight. */
export const WEIGHT_ENCODINGS = ['f32', 'f16', 'int8'] as const;
export type WeightEncoding = (typeof WEIGHT_ENCODINGS)[number];

/** A job's wire settings (JobConfig.compression). topkRatio: fraction of coordinates sent, (0, 1]. */
export interface CompressionConfig {
  readonly weights: WeightEncoding;
  readonly gradients: Encoding;
  readonly topkRatio?: number | undefined;
}

export const NO_COMPRESSION: CompressionConfig = { weights: 'f32', gradients: 'f32' };
export const DEFAULT_TOPK_RATIO = 0.01;

const pad4 = (n: number): number => (n + 3) & ~3;

// ---- half floats --------------------------------------------------------------------------------

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);
const HALF_MAX_BITS = 0x7bff;

/** The IEEE binary16 bits of v, rounded to nearest even; finite overflow clamps to +-65504, NaN stays NaN. */
export function toHalf(v: number): number {
  f32Scratch[0] = v;
  return halfFromBits(u32Scratch[0]!);
}

/** toHalf of the float32 whose bits are x (the bulk encoders read the bits straight from the array). */
export function halfFromBits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | HALF_MAX_BITS;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (h & 1) === 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++;
  if ((h & 0x7fff) >= 0x7c00) h = HALF_MAX_BITS;
  return sign | h;
}

let halfTable: Float32Array | null = null;
/** float32 value of every half bit pattern (256 KB, built once). */
function halves(): Float32Array {
  if (halfTable) return halfTable;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >>> 10) & 0x1f;
    const m = h & 0x3ff;
    t[h] = e === 0 ? s * m * 2 ** -24 : e === 0x1f ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
  }
  halfTable = t;
  return t;
}

export function fromHalf(h: number): number {
  return halves()[h & 0xffff]!;
}

// ---- encode / decode ----------------------------------------------------------------------------

export function tensorSizes(specs: readonly TensorSpec[]): number[] {
  return specs.map((s) => sizeOf(s.shape));
}

/** Bytes an encoding takes for n values in T tensors (topk: for k values). */
export function encodedBytes(encoding: Encoding, n: number, tensors: number, k = 0): number {
  switch (encoding) {
    case 'f32':
      return n * 4;
    case 'f16':
      return pad4(n * 2);
    case 'int8':
      return tensors * 4 + pad4(n);
    case 'topk':
      return 4 + k * 4 + pad4(k * 2);
  }
}

export function topkCount(n: number, ratio: number): number {
  return Math.max(1, Math.min(n, Math.ceil(n * ratio)));
}

/**
 * Encodes x (the tensors of `sizes` laid end to end) into a fresh buffer. f32 copies; topk keeps the
 * `topkCount(n, ratio)` largest magnitudes.
 */
export function encodeVector(encoding: Encoding, x: Float32Array, sizes: readonly number[], topkRatio = DEFAULT_TOPK_RATIO): Uint8Array {
  const n = x.length;
  switch (encoding) {
    case 'f32':
      return new Uint8Array(x.slice().buffer);
    case 'f16': {
      const out = new Uint8Array(encodedBytes('f16', n, sizes.length));
      const h = new Uint16Array(out.buffer, 0, n);
      const bits = new Uint32Array(x.buffer, x.byteOffset, n);
      for (let i = 0; i < n; i++) h[i] = halfFromBits(bits[i]!);
      return out;
    }
    case 'int8': {
      const out = new Uint8Array(encodedBytes('int8', n, sizes.length));
      const scales = new Float32Array(out.buffer, 0, sizes.length);
      const q = new Int8Array(out.buffer, sizes.length * 4, n);
      let at = 0;
      sizes.forEach((size, t) => {
        let max = 0;
        for (let i = at; i < at + size; i++) {
          const a = Math.abs(x[i]!);
          if (a > max) max = a;
        }
        const scale = max > 0 && Number.isFinite(max) ? max / 127 : max === 0 ? 0 : NaN;
        scales[t] = scale;
        const inv = scale > 0 ? 1 / scale : 0;
        for (let i = at; i < at + size; i++) q[i] = Math.max(-127, Math.min(127, Math.round(x[i]! * inv)));
        at += size;
      });
      return out;
    }
    case 'topk': {
      const k = topkCount(n, topkRatio);
      const idx = topkIndices(x, k);
      const out = new Uint8Array(encodedBytes('topk', n, sizes.length, k));
      const view = new DataView(out.buffer);
      view.setUint32(0, k, true);
      const ids = new Uint32Array(out.buffer, 4, k);
      ids.set(idx);
      const vals = new Uint16Array(out.buffer, 4 + k * 4, k);
      for (let j = 0; j < k; j++) vals[j] = toHalf(x[idx[j]!]!);
      return out;
    }
  }
}

/** Indices of the k largest |x|, ascending. Threshold by selection on a copy (O(n) expected). */
export function topkIndices(x: Float32Array, k: number): Uint32Array {
  const n = x.length;
  if (k >= n) return Uint32Array.from({ length: n }, (_, i) => i);
  const mags = new Float32Array(n);
  for (let i = 0; i < n; i++) mags[i] = Math.abs(x[i]!);
  const threshold = kthLargest(mags, k);
  const out = new Uint32Array(k);
  let j = 0;
  // Strictly above the threshold first, then ties at it, in index order, until k are taken.
  for (let i = 0; i < n && j < k; i++) if (Math.abs(x[i]!) > threshold) out[j++] = i;
  if (j < k) {
    const taken = new Set(out.subarray(0, j));
    for (let i = 0; i < n && j < k; i++) if (Math.abs(x[i]!) === threshold && !taken.has(i)) out[j++] = i;
    out.sort();
  }
  return out;
}

/** The k-th largest value of a (reordered in place), Hoare quickselect. */
function kthLargest(a: Float32Array, k: number): number {
  let lo = 0;
  let hi = a.length - 1;
  const target = k - 1;
  while (lo < hi) {
    const pivot = a[(lo + hi) >>> 1]!;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! > pivot) i++;
      while (a[j]! < pivot) j--;
      if (i <= j) {
        const t = a[i]!;
        a[i] = a[j]!;
        a[j] = t;
        i++;
        j--;
      }
    }
    if (target <= j) hi = j;
    else if (target >= i) lo = i;
    else return a[target]!;
  }
  return a[target]!;
}

export type DecodeResult = { ok: true; values: Float32Array } | { ok: false; message: string };

/**
 * Decodes bytes of `encoding` for n values in tensors of `sizes`. f32 returns a view (no copy) when
 * the bytes are 4-byte aligned. Refuses wrong lengths and out-of-range or unordered top-k indices.
 */
export function decodeVector(encoding: Encoding, bytes: Uint8Array, sizes: readonly number[]): DecodeResult {
  const n = sizes.reduce((s, x) => s + x, 0);
  const aligned = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  switch (encoding) {
    case 'f32': {
      if (aligned.byteLength !== n * 4) return { ok: false, message: `f32: got ${aligned.byteLength} bytes, expected ${n * 4}` };
      return { ok: true, values: new Float32Array(aligned.buffer, aligned.byteOffset, n) };
    }
    case 'f16': {
      const want = encodedBytes('f16', n, sizes.length);
      if (aligned.byteLength !== want) return { ok: false, message: `f16: got ${aligned.byteLength} bytes, expected ${want}` };
      const h = new Uint16Array(aligned.buffer, aligned.byteOffset, n);
      const t = halves();
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = t[h[i]!]!;
      return { ok: true, values: out };
    }
    case 'int8': {
      const want = encodedBytes('int8', n, sizes.length);
      if (aligned.byteLength !== want) return { ok: false, message: `int8: got ${aligned.byteLength} bytes, expected ${want}` };
      const scales = new Float32Array(aligned.buffer, aligned.byteOffset, sizes.length);
      const q = new Int8Array(aligned.buffer, aligned.byteOffset + sizes.length * 4, n);
      const out = new Float32Array(n);
      let at = 0;
      sizes.forEach((size, t) => {
        const s = scales[t]!;
        for (let i = at; i < at + size; i++) out[i] = q[i]! * s;
        at += size;
      });
      return { ok: true, values: out };
    }
    case 'topk': {
      if (aligned.byteLength < 4) return { ok: false, message: 'topk: missing count' };
      const k = new DataView(aligned.buffer, aligned.byteOffset, 4).getUint32(0, true);
      const want = encodedBytes('topk', n, sizes.length, k);
      if (k > n || aligned.byteLength !== want) return { ok: false, message: `topk: ${aligned.byteLength} bytes do not hold ${k} of ${n} values` };
      const ids = new Uint32Array(aligned.buffer, aligned.byteOffset + 4, k);
      const vals = new Uint16Array(aligned.buffer, aligned.byteOffset + 4 + k * 4, k);
      const t = halves();
      const out = new Float32Array(n);
      let prev = -1;
      for (let j = 0; j < k; j++) {
        const i = ids[j]!;
        if (i >= n || i <= prev) return { ok: false, message: `topk: index ${i} at ${j} is out of range or out of order` };
        out[i] = t[vals[j]!]!;
        prev = i;
      }
      return { ok: true, values: out };
    }
  }
}

/**
 * Error feedback (Deep Gradient Compression, Lin et al. 2018), kept on the worker: what a lossy
 * encoding did not send is added to the next gradient, so nothing is lost, only delayed.
 */
export class ErrorFeedback {
  private residual: Float32Array | null = null;

  constructor(
    private readonly encoding: Encoding,
    private readonly sizes: readonly number[],
    private readonly topkRatio = DEFAULT_TOPK_RATIO,
  ) {}

  /** Encodes grad + residual; the residual becomes what was not sent. `grad` is not modified. */
  encode(grad: Float32Array): Uint8Array {
    if (this.encoding === 'f32') return encodeVector('f32', grad, this.sizes);
    const acc = grad.slice();
    const r = this.residual;
    if (r) for (let i = 0; i < acc.length; i++) acc[i]! += r[i]!;
    const bytes = encodeVector(this.encoding, acc, this.sizes, this.topkRatio);
    const dec = decodeVector(this.encoding, bytes, this.sizes);
    if (!dec.ok) throw new Error(dec.message);
    for (let i = 0; i < acc.length; i++) acc[i] = acc[i]! - dec.values[i]!;
    this.residual = acc;
    return bytes;
  }

  /** What is still owed (tests; the L2 norm of the residual). */
  residualNorm(): number {
    if (!this.residual) return 0;
    let s = 0;
    for (const v of this.residual) s += v * v;
    return Math.sqrt(s);
  }

  /** Forget the residual (new job, new model). */
  reset(): void {
    this.residual = null;
  }
}

/**
 * The encodings a lease uses: the job's choice where the worker announced it can use it, else f32
 * (an older worker announces none and keeps working uncompressed).
 */
export function negotiate(job: CompressionConfig | undefined, workerCodecs: readonly string[] | undefined): { weights: WeightEncoding; gradients: Encoding; topkRatio: number } {
  const want = job ?? NO_COMPRESSION;
  const can = new Set(workerCodecs ?? []);
  return {
    weights: can.has(want.weights) ? want.weights : 'f32',
    gradients: can.has(want.gradients) ? want.gradients : 'f32',
    topkRatio: want.topkRatio ?? DEFAULT_TOPK_RATIO,
  };
}

/**
 * Reads `weights=int8,gradients=topk:0.01` (either part may be left out: f32) as a job's
 * compression; 'f32' or '' is none. The error names the part that is not understood.
 */
export function parseCompression(text: string): { ok: true; value: CompressionConfig } | { ok: false; error: string } {
  let weights: WeightEncoding = 'f32';
  let gradients: Encoding = 'f32';
  let topkRatio: number | undefined;
  for (const part of text.split(',').map((p) => p.trim()).filter((p) => p !== '' && p !== 'f32')) {
    const [key, value = ''] = part.split('=').map((p) => p.trim());
    if (key === 'weights' && (WEIGHT_ENCODINGS as readonly string[]).includes(value)) weights = value as WeightEncoding;
    else if (key === 'gradients') {
      const [enc = '', ratio] = value.split(':');
      if (!(ENCODINGS as readonly string[]).includes(enc)) return { ok: false, error: `gradients=${value}: use one of ${ENCODINGS.join(', ')} (topk:RATIO, e.g. topk:0.01)` };
      gradients = enc as Encoding;
      if (ratio !== undefined) {
        const r = Number(ratio);
        if (enc !== 'topk' || !(r > 0 && r <= 1)) return { ok: false, error: `gradients=${value}: a ratio in (0, 1] goes with topk only, e.g. topk:0.01` };
        topkRatio = r;
      }
    } else return { ok: false, error: `"${part}": use weights=${WEIGHT_ENCODINGS.join('|')} and/or gradients=${ENCODINGS.join('|')}[:ratio]` };
  }
  return { ok: true, value: topkRatio === undefined ? { weights, gradients } : { weights, gradients, topkRatio } };
}
