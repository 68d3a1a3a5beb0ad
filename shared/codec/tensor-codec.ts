// Tensor codec: a list of named tensors travels as TensorSpec[] (JSON) plus ONE binary buffer,
// never as JSON number arrays. Owns the byte layout: tensors laid end to end, in spec order,
// little-endian, each starting at a 4-byte aligned offset (float32/int32 are 4 bytes, uint8 is padded).

export const DTYPES = ['float32', 'int32', 'uint8'] as const;
export type WireDType = (typeof DTYPES)[number];

export interface TensorSpec {
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: WireDType;
}

export type TypedArrayOf<D extends WireDType> = D extends 'float32'
  ? Float32Array
  : D extends 'int32'
    ? Int32Array
    : Uint8Array;

export type AnyTyped = Float32Array | Int32Array | Uint8Array;

export interface NamedArray {
  readonly spec: TensorSpec;
  readonly data: AnyTyped;
}

/** What arrives from socket.io: Node gives a Buffer (a Uint8Array view), browsers an ArrayBuffer. */
export type BinaryLike = ArrayBuffer | ArrayBufferView;

export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function bytesPerElement(dtype: WireDType): number {
  return dtype === 'uint8' ? 1 : 4;
}

const align4 = (n: number): number => (n + 3) & ~3;

/** Byte offsets of each spec in the packed buffer, and the total length. */
export function layout(specs: readonly TensorSpec[]): { offsets: number[]; byteLength: number } {
  const offsets: number[] = [];
  let at = 0;
  for (const s of specs) {
    at = align4(at);
    offsets.push(at);
    at += sizeOf(s.shape) * bytesPerElement(s.dtype);
  }
  return { offsets, byteLength: align4(at) };
}

const littleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Packs arrays (matching specs one to one) into one ArrayBuffer. */
export function encodeTensors(specs: readonly TensorSpec[], arrays: readonly AnyTyped[]): ArrayBuffer {
  if (!littleEndian) throw new Error('big-endian hosts are not supported');
  if (specs.length !== arrays.length) throw new Error(`encodeTensors: ${specs.length} specs, ${arrays.length} arrays`);
  const { offsets, byteLength } = layout(specs);
  const out = new Uint8Array(byteLength);
  specs.forEach((s, i) => {
    const a = arrays[i]!;
    if (a.length !== sizeOf(s.shape)) throw new Error(`encodeTensors: ${s.name} has ${a.length} values, shape wants ${sizeOf(s.shape)}`);
    out.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), offsets[i]!);
  });
  return out.buffer;
}

/** A copy-free-where-possible view of the bytes as a Uint8Array. */
export function toBytes(bin: BinaryLike): Uint8Array {
  if (bin instanceof ArrayBuffer) return new Uint8Array(bin);
  if (ArrayBuffer.isView(bin)) return new Uint8Array(bin.buffer, bin.byteOffset, bin.byteLength);
  throw new TypeError('expected binary data');
}

export function isBinary(x: unknown): x is BinaryLike {
  return x instanceof ArrayBuffer || ArrayBuffer.isView(x);
}

/**
 * Splits a packed buffer back into typed arrays. Throws when the length does not match the specs.
 * A Node Buffer often sits at an unaligned offset inside a shared pool: then the bytes are copied once.
 */
export function decodeTensors(specs: readonly TensorSpec[], bin: BinaryLike): NamedArray[] {
  let bytes = toBytes(bin);
  const { offsets, byteLength } = layout(specs);
  if (bytes.byteLength !== byteLength) {
    throw new RangeError(`decodeTensors: got ${bytes.byteLength} bytes, specs need ${byteLength}`);
  }
  if (bytes.byteOffset % 4 !== 0) bytes = bytes.slice();
  return specs.map((spec, i) => {
    const n = sizeOf(spec.shape);
    const at = bytes.byteOffset + offsets[i]!;
    const data: AnyTyped =
      spec.dtype === 'float32'
        ? new Float32Array(bytes.buffer, at, n)
        : spec.dtype === 'int32'
          ? new Int32Array(bytes.buffer, at, n)
          : new Uint8Array(bytes.buffer, at, n);
    return { spec, data };
  });
}

/** Specs equal in names, shapes and dtypes, in order. */
export function sameSpecs(a: readonly TensorSpec[], b: readonly TensorSpec[]): boolean {
  if (a.length !== b.length) return false;
  return a.every((s, i) => {
    const t = b[i]!;
    return s.name === t.name && s.dtype === t.dtype && s.shape.length === t.shape.length && s.shape.every((d, j) => d === t.shape[j]);
  });
}
