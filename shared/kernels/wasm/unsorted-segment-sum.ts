// UnsortedSegmentSum for wasm: missing in tfjs-backend-wasm 4.22, and the GatherV2 gradient needs
// it, so training an Embedding layer (or anything behind tf.gather) on wasm threw "not registered".
// Composed from wasm's ScatterNd (which sums duplicate indices), compare/Select, Reshape and Slice.
import * as tf from '@tensorflow/tfjs';
import { composeOnWasm, WASM_BACKEND } from './compose.ts';

/**
 * out[s, ...] = sum of x[i, ...] over i with segmentIds[i] == s (TF semantics: segmentIds' shape is
 * a prefix of x's shape; ids outside [0, numSegments) are dropped). Out-of-range ids are routed to
 * a spare segment numSegments that is cut off afterwards, because ScatterNd does not bounds-check.
 */
function unsortedSegmentSum({ inputs, backend, attrs }: Parameters<tf.KernelFunc>[0]): tf.TensorInfo {
  const { x, segmentIds } = inputs;
  if (x === undefined || segmentIds === undefined) {
    throw new Error('UnsortedSegmentSum: needs inputs x and segmentIds');
  }
  const { numSegments } = attrs as unknown as tf.UnsortedSegmentSumAttrs;
  const idsRank = segmentIds.shape.length;
  if (segmentIds.shape.join() !== x.shape.slice(0, idsRank).join()) {
    throw new Error(`UnsortedSegmentSum: segmentIds shape [${segmentIds.shape}] must prefix x shape [${x.shape}]`);
  }
  const count = tf.util.sizeFromShape(segmentIds.shape);
  const inner = x.shape.slice(idsRank);

  return composeOnWasm(backend, (s) => {
    const ids = s.reshape(segmentIds, [count]);
    const zero = s.run('Fill', {}, { shape: [], value: 0, dtype: 'int32' });
    const limit = s.run('Fill', {}, { shape: [], value: numSegments, dtype: 'int32' });
    const spare = s.run('Fill', {}, { shape: [count], value: numSegments, dtype: 'int32' });
    const valid = s.run('LogicalAnd', {
      a: s.run('GreaterEqual', { a: ids, b: zero }),
      b: s.run('Less', { a: ids, b: limit }),
    });
    const routed = s.run('Select', { condition: valid, t: ids, e: spare });
    const summed = s.run(
      'ScatterNd',
      { indices: s.reshape(routed, [count, 1]), updates: s.reshape(x, [count, ...inner]) },
      { shape: [numSegments + 1, ...inner] },
    );
    return s.cropEnd(summed, [numSegments, ...inner]);
  });
}

export const unsortedSegmentSumConfig: tf.KernelConfig = {
  kernelName: tf.UnsortedSegmentSum,
  backendName: WASM_BACKEND,
  kernelFunc: unsortedSegmentSum,
};
