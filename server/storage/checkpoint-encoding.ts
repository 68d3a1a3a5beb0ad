// The bytes of one checkpoint, as both stores keep them: model.json, weights.bin, optimizer.bin
// (the optimizer's slots packed by the tensor codec) and state.json, which carries the SHA-256 of
// the other three. Pure and synchronous; the coordinator runs it in the checkpoint thread
// (checkpoint-encoder.ts) so a 1M-parameter model's ~16 MB are packed and hashed off the event loop.

import { createHash } from 'node:crypto';
import { encodeTensors, type TensorSpec } from '../../shared/codec/tensor-codec.ts';
import type { CheckpointData, CheckpointState } from './checkpoint-store.ts';

/** What state.json holds. */
export interface StateFile extends CheckpointState {
  readonly sha256: { weights: string; optimizer: string; model: string };
}

/** A checkpoint as handed over for writing: optimizer.bin's bytes, or the slots to pack into it. */
export interface CheckpointInput extends Omit<CheckpointData, 'optimizer'> {
  /** Packed bytes, or float32 slots in `state.optimizer.specs` order. */
  readonly optimizer: Uint8Array | readonly Float32Array[];
}

/** A checkpoint ready to store: the four files' contents, checksums inside `stateJson`. */
export interface EncodedCheckpoint {
  readonly version: number;
  readonly modelJson: string;
  readonly weights: Uint8Array;
  readonly optimizer: Uint8Array;
  readonly stateJson: string;
}

export const sha256 = (b: Uint8Array | string): string => createHash('sha256').update(b).digest('hex');

/** Whether the digests of [weights, optimizer, model] are the ones state.json records. */
export function checksumsMatch(st: StateFile, digests: readonly string[]): boolean {
  const [weights, optimizer, model] = digests;
  return weights === st.sha256.weights && optimizer === st.sha256.optimizer && model === st.sha256.model;
}

/** model.json of a TensorFlow.js Layers model whose weights are in weights.bin. */
export function modelJsonOf(modelTopology: unknown, weightSpecs: readonly TensorSpec[]): string {
  return JSON.stringify({
    format: 'layers-model',
    generatedBy: 'flock',
    convertedBy: null,
    modelTopology,
    weightsManifest: [{ paths: ['weights.bin'], weights: weightSpecs }],
  });
}

export function encodeCheckpoint(cp: CheckpointInput): EncodedCheckpoint {
  const modelJson = modelJsonOf(cp.modelTopology, cp.weightSpecs);
  const optimizer = cp.optimizer instanceof Uint8Array ? cp.optimizer : new Uint8Array(encodeTensors(cp.state.optimizer.specs, cp.optimizer));
  const state: StateFile = {
    ...cp.state,
    sha256: { weights: sha256(cp.weights), optimizer: sha256(optimizer), model: sha256(modelJson) },
  };
  return { version: cp.state.version, modelJson, weights: cp.weights, optimizer, stateJson: JSON.stringify(state) };
}
