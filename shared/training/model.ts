// Builds a job's Layers model from its topology and moves weights in and out of it as packed
// binary (see shared/codec). Weight names are the layers' original names, stable across processes.

import { tf } from './tf.ts';
import { decodeTensors, sameSpecs, type BinaryLike, type TensorSpec } from '../codec/tensor-codec.ts';

type LayerVar = tf.LayerVariable & { originalName: string };

export async function buildModel(topology: unknown): Promise<tf.LayersModel> {
  // modelFromJSON accepts the plain dict that model.toJSON(null, false) produced.
  return tf.models.modelFromJSON({ modelTopology: topology } as unknown as tf.io.ModelJSON);
}

const specOf = (w: tf.LayerVariable): TensorSpec => ({
  name: (w as LayerVar).originalName,
  shape: w.shape.map((d) => d ?? 0),
  dtype: 'float32',
});

/** All weights (trainable first, as model.weights orders them). */
export function weightSpecs(model: tf.LayersModel): TensorSpec[] {
  return model.weights.map(specOf);
}

/** Trainable weights, in the order gradients travel. */
export function trainableSpecs(model: tf.LayersModel): TensorSpec[] {
  return model.trainableWeights.map(specOf);
}

/** Overwrites all the model's weights from a packed payload; throws if the specs differ. */
export function setWeightsFromPacked(model: tf.LayersModel, specs: readonly TensorSpec[], data: BinaryLike): void {
  const own = weightSpecs(model);
  if (!sameSpecs(own, specs)) throw new Error('weights payload does not match the model');
  const arrays = decodeTensors(specs, data);
  tf.tidy(() => {
    model.setWeights(arrays.map((a) => tf.tensor(a.data as Float32Array, [...a.spec.shape], 'float32')));
  });
}

/** Reads all weights into one packed Float32Array (float32 tensors laid end to end). */
export async function packWeights(model: tf.LayersModel): Promise<{ specs: TensorSpec[]; data: Float32Array }> {
  const specs = weightSpecs(model);
  const flat = tf.tidy(() => tf.concat(model.weights.map((w) => w.read().reshape([-1]))));
  try {
    return { specs, data: (await flat.data()) as Float32Array };
  } finally {
    flat.dispose();
  }
}
