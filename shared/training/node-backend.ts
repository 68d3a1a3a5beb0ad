// Starts tfjs in Node on the WASM backend (about 4x the cpu backend; tfjs-node cannot be installed
// offline). Used by the coordinator (aggregation, evaluation), Node workers and benchmarks.

import { tf } from './tf.ts';
import '@tensorflow/tfjs-backend-wasm';
import { registerFlockKernels } from '../kernels/index.ts';

registerFlockKernels();

let ready: Promise<string> | null = null;

export function initNodeBackend(name: 'wasm' | 'cpu' = 'wasm'): Promise<string> {
  ready ??= (async () => {
    const ok = await tf.setBackend(name);
    if (!ok) throw new Error(`tfjs backend ${name} failed to start`);
    await tf.ready();
    return tf.getBackend();
  })();
  return ready;
}
