// The job file's `data` and `preprocessing` sections: where the examples are and how raw columns
// become model inputs. Schemas only (validation at the boundary); the lead embeds them in the job file.

import { z } from 'zod';

export const DATA_FORMATS = ['csv', 'parquet', 'arrow', 'npz', 'npy', 'idx', 'images'] as const;
export type DataFormat = (typeof DATA_FORMATS)[number];

const name = z.string().min(1);
const names = z.array(name).min(1);

/** A file or image folder, or (npy, IDX: one array a file) array name -> file. Paths are relative to the job file. */
export const SplitFiles = z.union([name, z.record(name, name).refine((m) => Object.keys(m).length > 0, 'needs at least one array')]);
export type SplitFiles = z.infer<typeof SplitFiles>;

export const DataSection = z
  .object({
    train: SplitFiles,
    test: SplitFiles.optional(),
    /** The label column or array; several columns for multi-output regression. Not used by image folders. */
    label: z.union([name, names]).optional(),
    /** Feature columns (default: every column but the label), or for npz/npy/IDX the feature array. */
    features: z.union([name, names]).optional(),
    /** Fraction of train held out as test when `test` is absent (default 0.2), drawn with the job's seed. */
    validationSplit: z.number().gt(0).lte(0.5).optional(),
    format: z.enum(DATA_FORMATS).optional(),
  })
  .strict()
  .refine((d) => d.test === undefined || d.validationSplit === undefined, {
    message: 'give either data.test or data.validationSplit, not both',
    path: ['validationSplit'],
  });
export type DataSection = z.infer<typeof DataSection>;

export const Preprocessing = z
  .object({
    /** Subtract the training-set mean and divide by its std (0 -> 1): all numeric features, or these columns. */
    standardize: z.union([z.boolean(), names]).optional(),
    /** Multiply every numeric feature, or the named columns, by a factor (applied before standardize). */
    scale: z.union([z.number().finite().positive(), z.record(name, z.number().finite().positive())]).optional(),
    /** Categorical columns expanded to one 0/1 feature per category seen in train (sorted). */
    oneHot: names.optional(),
  })
  .strict();
export type Preprocessing = z.infer<typeof Preprocessing>;
