// meta.json of a shard store: the DataSpec of its rows, the row counts, and everything a user of
// the exported model needs to prepare raw rows the same way (columns, one-hot, scale, standardize).
// Owns the file names of a store; the schema validates meta.json when a store is opened.

import { z } from 'zod';
import type { DataSpec } from '../../../shared/data/data-spec.ts';

export const STORE_FILES = { meta: 'meta.json', train: { x: 'train.x', y: 'train.y' }, test: { x: 'test.x', y: 'test.y' } } as const;

export interface StorePreprocessing {
  /** The input columns (or arrays) the features come from, in order. */
  readonly rawColumns: readonly string[];
  readonly oneHot: readonly { readonly column: string; readonly categories: readonly string[] }[];
  /** Applied after scale: (value * factor - mean) / std, per stored feature. */
  readonly standardize: readonly { readonly feature: string; readonly mean: number; readonly std: number }[];
  /** Factors other than 1, per stored feature. */
  readonly scale: readonly { readonly feature: string; readonly factor: number }[];
}

export interface StoreMeta {
  readonly formatVersion: 1;
  readonly spec: DataSpec;
  readonly counts: { readonly train: number; readonly test: number };
  /** One per stored feature, after one-hot expansion: `col`, `col[i]` (list), `col=category`. */
  readonly featureNames: readonly string[];
  readonly preprocessing: StorePreprocessing;
  readonly labels: { readonly columns: readonly string[]; readonly classNames?: readonly string[] | undefined };
  readonly sources: { readonly train: string; readonly test: string | null; readonly validationSplit: number | null };
}

const count = z.number().int().nonnegative();
const DataSpecSchema = z.object({
  featureShape: z.array(z.number().int().positive()).min(1),
  features: z.object({ dtype: z.enum(['uint8', 'float32']), scale: z.number().finite() }),
  target: z.discriminatedUnion('kind', [
    z.object({ kind: z.literal('classes'), numClasses: z.number().int().positive(), dtype: z.enum(['uint8', 'int32']), classNames: z.array(z.string()).optional() }),
    z.object({ kind: z.literal('regression'), outputs: z.number().int().positive(), names: z.array(z.string()).optional() }),
  ]),
});

export const StoreMetaSchema = z.object({
  formatVersion: z.literal(1),
  spec: DataSpecSchema,
  counts: z.object({ train: count, test: count }),
  featureNames: z.array(z.string()),
  preprocessing: z.object({
    rawColumns: z.array(z.string()),
    oneHot: z.array(z.object({ column: z.string(), categories: z.array(z.string()) })),
    standardize: z.array(z.object({ feature: z.string(), mean: z.number(), std: z.number() })),
    scale: z.array(z.object({ feature: z.string(), factor: z.number() })),
  }),
  labels: z.object({ columns: z.array(z.string()), classNames: z.array(z.string()).optional() }),
  sources: z.object({ train: z.string(), test: z.string().nullable(), validationSplit: z.number().nullable() }),
}) satisfies z.ZodType<StoreMeta>;
