// IDX file reader (the format of MNIST, Fashion-MNIST, EMNIST...): any element type, any rank.
// Format: 2 zero bytes, a type code, the rank; then one big-endian uint32 per dimension; then data.

export const IDX_TYPES = {
  0x08: 'uint8',
  0x09: 'int8',
  0x0b: 'int16',
  0x0c: 'int32',
  0x0d: 'float32',
  0x0e: 'float64',
} as const;
export type IdxType = (typeof IDX_TYPES)[keyof typeof IDX_TYPES];

export interface IdxArray {
  readonly type: IdxType;
  readonly shape: readonly number[];
  /** uint8 data is a view on the input; wider types are decoded from big-endian into a fresh array. */
  readonly data: Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;
}

const WIDTH: Record<IdxType, number> = { uint8: 1, int8: 1, int16: 2, int32: 4, float32: 4, float64: 8 };

export function parseIdx(buf: Uint8Array): IdxArray {
  if (buf.byteLength < 4) throw new Error('IDX: file too short for a header');
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (view.getUint8(0) !== 0 || view.getUint8(1) !== 0) throw new Error('IDX: bad magic (first two bytes must be 0)');
  const code = view.getUint8(2);
  const type = (IDX_TYPES as Record<number, IdxType | undefined>)[code];
  if (!type) throw new Error(`IDX: unknown type code 0x${code.toString(16)}`);
  const rank = view.getUint8(3);
  const headerBytes = 4 + 4 * rank;
  if (buf.byteLength < headerBytes) throw new Error('IDX: file too short for its dimensions');
  const shape: number[] = [];
  for (let i = 0; i < rank; i++) shape.push(view.getUint32(4 + 4 * i, false));
  const count = shape.reduce((a, b) => a * b, 1);
  const w = WIDTH[type];
  const need = headerBytes + count * w;
  if (buf.byteLength < need) throw new Error(`IDX: truncated: ${buf.byteLength} bytes, header says ${need}`);
  if (buf.byteLength > need) throw new Error(`IDX: ${buf.byteLength - need} trailing bytes`);
  const at = headerBytes;
  switch (type) {
    case 'uint8':
      return { type, shape, data: buf.subarray(at, need) };
    case 'int8':
      return { type, shape, data: new Int8Array(buf.buffer, buf.byteOffset + at, count) };
    default: {
      const out =
        type === 'int16' ? new Int16Array(count) : type === 'int32' ? new Int32Array(count) : type === 'float32' ? new Float32Array(count) : new Float64Array(count);
      for (let i = 0; i < count; i++) {
        const o = at + i * w;
        out[i] =
          type === 'int16' ? view.getInt16(o, false) : type === 'int32' ? view.getInt32(o, false) : type === 'float32' ? view.getFloat32(o, false) : view.getFloat64(o, false);
      }
      return { type, shape, data: out };
    }
  }
}

/** Writes an IDX file (used by tests and by anyone exporting a dataset). */
export function encodeIdx(type: IdxType, shape: readonly number[], data: ArrayLike<number>): Uint8Array {
  const code = Number(Object.entries(IDX_TYPES).find(([, t]) => t === type)![0]);
  const w = WIDTH[type];
  const header = 4 + 4 * shape.length;
  const out = new Uint8Array(header + data.length * w);
  const view = new DataView(out.buffer);
  view.setUint8(2, code);
  view.setUint8(3, shape.length);
  shape.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  for (let i = 0; i < data.length; i++) {
    const o = header + i * w;
    const v = data[i]!;
    if (type === 'uint8') view.setUint8(o, v);
    else if (type === 'int8') view.setInt8(o, v);
    else if (type === 'int16') view.setInt16(o, v, false);
    else if (type === 'int32') view.setInt32(o, v, false);
    else if (type === 'float32') view.setFloat32(o, v, false);
    else view.setFloat64(o, v, false);
  }
  return out;
}
