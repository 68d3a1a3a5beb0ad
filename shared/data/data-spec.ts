// How a job's examples are laid out, on disk at the coordinator and on the wire to workers.
// Every example is one fixed-size row of features and one fixed-size row of targets, so a lease
// reads only its rows (by offset) and a worker decodes them without knowing the source format.

/** Features: `dtype` per value as stored and sent; the worker multiplies by `scale` (1/255 for pixels). */
export interface FeatureEncoding {
  readonly dtype: 'uint8' | 'float32';
  readonly scale: number;
}

/**
 * Targets. `classes`: one class index per example (uint8 when numClasses <= 256, else int32),
 * `classNames[i]` is the label value the file had for class i. `regression`: `outputs` float32 values.
 */
export type TargetSpec =
  | { readonly kind: 'classes'; readonly numClasses: number; readonly dtype: 'uint8' | 'int32'; readonly classNames?: readonly string[] | undefined }
  | { readonly kind: 'regression'; readonly outputs: number; readonly names?: readonly string[] | undefined };

export interface DataSpec {
  /** Shape of one example, e.g. [28, 28, 1] or [30]: the model's input shape without the batch. */
  readonly featureShape: readonly number[];
  readonly features: FeatureEncoding;
  readonly target: TargetSpec;
}

export const bytesPerFeature = (f: FeatureEncoding): number => (f.dtype === 'uint8' ? 1 : 4);

export const featureCount = (spec: DataSpec): number => spec.featureShape.reduce((a, b) => a * b, 1);

/** Bytes of one example's features. */
export const featureRowBytes = (spec: DataSpec): number => featureCount(spec) * bytesPerFeature(spec.features);

/** Bytes of one example's targets. */
export function targetRowBytes(t: TargetSpec): number {
  if (t.kind === 'regression') return 4 * t.outputs;
  return t.dtype === 'uint8' ? 1 : 4;
}

/** The class-index dtype for a number of classes. */
export const classDtype = (numClasses: number): 'uint8' | 'int32' => (numClasses <= 256 ? 'uint8' : 'int32');
