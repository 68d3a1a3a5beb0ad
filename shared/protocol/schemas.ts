// Runtime validation of every client->server payload. Types are not validation: a handler
// calls `parse(Schema, raw)` first and answers BAD_REQUEST on failure, changing nothing.

import { z } from 'zod';
import { DTYPES, isBinary, type BinaryLike } from '../codec/tensor-codec.ts';
import { BACKENDS } from './messages.ts';
import { ENCODINGS } from '../codec/compression.ts';
import { ROW_CODECS, type RowCodec } from '../codec/rows-codec.ts';

const MAX_TENSORS = 4096;
const MAX_RANK = 8;
const id = z.string().min(1).max(128);
const count = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const binary = z.custom<BinaryLike>((v) => isBinary(v), { message: 'expected binary data' });

export const TensorSpecSchema = z.object({
  name: z.string().min(1).max(256),
  shape: z.array(z.number().int().min(0).max(1 << 30)).max(MAX_RANK),
  dtype: z.enum(DTYPES),
});

const AdapterSchema = z.object({
  vendor: z.string().max(256),
  architecture: z.string().max(256),
  description: z.string().max(512),
  isFallbackAdapter: z.boolean(),
});

export const HelloRequestSchema = z.object({
  protocol: z.number().int(),
  workerId: z.string().regex(/^[A-Za-z0-9_-]{8,64}$/).optional(),
  credential: z.string().max(128).optional(),
  capabilities: z.object({
    backend: z.enum(BACKENDS),
    adapter: AdapterSchema.optional(),
    wasmSimd: z.boolean().optional(),
    wasmThreads: z.boolean().optional(),
    userAgent: z.string().max(512).optional(),
    hardwareConcurrency: z.number().int().min(0).max(4096).optional(),
    probes: z
      .array(z.object({
        backend: z.enum(BACKENDS),
        samplesPerSec: z.number().finite().nonnegative(),
        status: z.enum(['ok', 'timeout', 'failed']).optional(),
        software: z.boolean().optional(),
      }))
      .max(8)
      .optional(),
    runtime: z.enum(['browser', 'node']),
    codecs: z.array(z.enum(ENCODINGS)).max(8).optional(),
    // Lenient: a newer worker may announce row encodings this coordinator does not know; they are dropped.
    rowCodecs: z
      .array(z.string().max(32))
      .max(8)
      .optional()
      .transform((a) => a?.filter((c): c is RowCodec => (ROW_CODECS as readonly string[]).includes(c))),
  }),
});

export const JobGetRequestSchema = z.object({ jobId: id.optional() });

export const LeaseRequestSchema = z.object({
  jobId: id.optional(),
  cachedVersion: count.nullable(),
  movable: z.boolean().optional(),
  rowCache: z.object({ id: z.string().regex(/^[A-Za-z0-9_-]{8,64}$/), capacity: z.number().int().min(0).max(1 << 30) }).optional(),
});

export const GradientPushSchema = z.object({
  leaseId: id,
  baseVersion: count,
  numSamples: z.number().int().positive().max(1 << 20),
  // NaN travels as null in JSON; a non-finite loss is recorded as unknown, the gradient is judged on its own.
  loss: z.number().nullable(),
  computeMs: z.number().finite().nonnegative(),
  specs: z.array(TensorSpecSchema).max(MAX_TENSORS),
  data: binary,
  encoding: z.enum(ENCODINGS).optional(),
});

export const LeaseReleaseSchema = z.object({ leaseId: id });
export const RefuseJobSchema = z.object({ jobId: id, reason: z.string().max(1000) });

export type ParseResult<T> = { ok: true; value: T } | { ok: false; message: string };

/** Validates `raw`; the message names the first offending field. */
export function parse<T>(schema: z.ZodType<T>, raw: unknown): ParseResult<T> {
  const r = schema.safeParse(raw);
  if (r.success) return { ok: true, value: r.data };
  const issue = r.error.issues[0];
  const where = issue && issue.path.length > 0 ? issue.path.join('.') + ': ' : '';
  return { ok: false, message: where + (issue?.message ?? 'invalid payload') };
}
