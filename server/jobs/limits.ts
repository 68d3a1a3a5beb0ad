// Size limits on what a job file may bring (FLOCK_MAX_MODEL_BYTES, FLOCK_MAX_DATASET_BYTES): checked
// while the model is read and while the data is converted, before anything is kept.

export interface SubmitLimits {
  readonly maxDatasetBytes: number;
  readonly maxModelBytes: number;
}

export const DEFAULT_LIMITS: SubmitLimits = { maxDatasetBytes: 4 * 2 ** 30, maxModelBytes: 512 * 2 ** 20 };
