// Training rows on the wire. A lease's rows (x and y) may travel compressed with raw DEFLATE
// (RFC 1951) when the worker announced it can inflate them (WorkerCapabilities.rowCodecs): image
// rows are mostly zeros (MNIST: 4.3x smaller at zlib level 1), so before the row cache holds the
// dataset they were most of the bytes a lease moves. The coordinator compresses
// (server/transport/row-compression.ts); the worker inflates here with
// fflate, synchronously (a browser worker runs this in its Web Worker): for a lease's few kilobytes
// the platform's DecompressionStream costs more in stream and promise hops than the inflation
// itself (with it, four Node workers sharing the coordinator's process lost 13% of their samples/s).

import { inflateSync } from 'fflate';

export const ROW_CODECS = ['deflate-raw'] as const;
export type RowCodec = (typeof ROW_CODECS)[number];

/** What this worker can inflate (announced in the hello). */
export function availableRowCodecs(): RowCodec[] {
  return ['deflate-raw'];
}

/** Inflates one compressed buffer, which must come out exactly `expectedBytes` long. */
export function inflateRows(bytes: Uint8Array, expectedBytes: number): Uint8Array {
  if (bytes.byteLength === 0) throw new Error('compressed rows are empty');
  // One byte of room: fflate stops silently at the end of a given buffer, so a stream that is too
  // long shows as a full buffer, and one that is too short as a shorter result.
  const out = new Uint8Array(expectedBytes + 1);
  let got: Uint8Array;
  try {
    got = inflateSync(bytes, { out });
  } catch (err) {
    throw new Error(`compressed rows do not inflate: ${(err as Error).message}`);
  }
  if (got.byteLength !== expectedBytes) throw new Error(`compressed rows inflated to ${got.byteLength === expectedBytes + 1 ? `more than ${expectedBytes}` : got.byteLength} bytes, expected ${expectedBytes}`);
  return got;
}
