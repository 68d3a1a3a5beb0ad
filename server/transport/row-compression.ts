// Lease rows compressed for the wire (shared/codec/rows-codec.ts says why and how the worker
// inflates them). Decides per lease: compress when the worker can inflate, the rows are worth it,
// and this job's rows have been compressing well. Rows up to 64 KiB are deflated inline (a
// thread-pool round trip delays a small lease more than the deflate takes: four Node workers
// sharing the coordinator's process became uneven with it, 8.5k against 10.7k samples each),
// larger ones (a `local` lease's thousands of rows) on libuv's thread pool. A job whose first
// leases save less than `minSaving` (float features that are noise to DEFLATE) stops being tried:
// its rows then travel as they are.

import { deflateRaw, deflateRawSync } from 'node:zlib';
import { promisify } from 'node:util';
import { toBytes } from '../../shared/codec/tensor-codec.ts';
import type { LeaseAck } from '../../shared/protocol/messages.ts';
import type { RowCodec } from '../../shared/codec/rows-codec.ts';

const deflate = promisify(deflateRaw);

export interface RowCompressionPolicy {
  /** zlib level: 1 is 4.3x on MNIST at ~150 MB/s per thread; 6 is 4.8x at half the speed. */
  readonly level: number;
  /** Rows smaller than this travel as they are (the call costs more than it saves). */
  readonly minBytes: number;
  /** Compressed rows must be at least this much smaller, else the lease carries the originals. */
  readonly minSaving: number;
  /** After this many tried leases of a job, its overall saving decides whether to go on trying. */
  readonly probeLeases: number;
  /** Rows up to this size are compressed on the event loop (about 0.5 ms at level 1), larger ones on the thread pool. */
  readonly inlineBytes: number;
}

export const DEFAULT_ROW_COMPRESSION: RowCompressionPolicy = { level: 1, minBytes: 2048, minSaving: 0.1, probeLeases: 16, inlineBytes: 64 * 1024 };

export interface RowCompressionFigures {
  tried: number;
  compressed: number;
  rawBytes: number;
  sentBytes: number;
}

export class RowCompressor {
  private readonly jobs = new Map<string, RowCompressionFigures>();

  constructor(private readonly policy: RowCompressionPolicy = DEFAULT_ROW_COMPRESSION) {}

  /** Per job: leases tried and compressed, row bytes before and after (sent = raw where not compressed). */
  figures(jobId: string): Readonly<RowCompressionFigures> | undefined {
    return this.jobs.get(jobId);
  }

  /** Whether this job's rows are still worth compressing. */
  worthTrying(jobId: string): boolean {
    const f = this.jobs.get(jobId);
    return !f || f.tried < this.policy.probeLeases || f.sentBytes <= f.rawBytes * (1 - this.policy.minSaving);
  }

  /**
   * The lease ack as it should travel to a worker that can inflate `codecs`, and the bytes saved.
   * Anything but a granted lease with rows worth compressing comes back as it was.
   */
  async forWire(ack: LeaseAck, codecs: readonly RowCodec[] | undefined): Promise<{ ack: LeaseAck; saved: number }> {
    if (!ack.ok || !codecs?.includes('deflate-raw')) return { ack, saved: 0 };
    const { lease } = ack;
    const x = toBytes(lease.x);
    const y = toBytes(lease.y);
    const raw = x.byteLength + y.byteLength;
    if (raw < this.policy.minBytes || !this.worthTrying(lease.jobId)) return { ack, saved: 0 };
    const opts = { level: this.policy.level };
    // Small rows inline (a few hundred microseconds; a thread-pool round trip would cost the lease
    // more in latency than it saves), larger ones off the event loop.
    const [cx, cy] = raw <= this.policy.inlineBytes ? [deflateRawSync(x, opts), deflateRawSync(y, opts)] : await Promise.all([deflate(x, opts), deflate(y, opts)]);
    const packed = cx.byteLength + cy.byteLength;
    const worth = packed <= raw * (1 - this.policy.minSaving);
    const f = this.jobs.get(lease.jobId) ?? { tried: 0, compressed: 0, rawBytes: 0, sentBytes: 0 };
    f.tried++;
    f.rawBytes += raw;
    f.sentBytes += worth ? packed : raw;
    if (worth) f.compressed++;
    this.jobs.set(lease.jobId, f);
    if (!worth) return { ack, saved: 0 };
    return { ack: { ...ack, lease: { ...lease, x: cx, y: cy, rowsEncoding: 'deflate-raw' } }, saved: raw - packed };
  }
}
