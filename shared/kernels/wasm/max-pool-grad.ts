// MaxPoolGrad for wasm, REPLACING the native kernel, which sends the gradient of any window whose
// values are all <= 0 to element 0 (see the note below). Reads and writes the wasm heap from JS,
// because no composition of the existing wasm kernels is correct.
import * as tf from '@tensorflow/tfjs';
import { asWasmBackend, WASM_BACKEND } from './compose.ts';

/**
 * Why not native, and why JS: tfjs-backend-wasm 4.22 seeds the running max with FLT_MIN (the
 * smallest positive float), so all-negative windows (and all-zero ones after relu) credit element 0
 * of the tensor; its MaxPoolWithArgmax shares that seed, so it cannot be composed around. This loop
 * works on views of the wasm heap (no copies), with cpu semantics: the first strict max in a window
 * gets the gradient and positions outside the input are skipped. Measured no slower than the native
 * kernel on the bench CNN.
 */
function maxPoolGrad({ inputs, backend, attrs }: Parameters<tf.KernelFunc>[0]): tf.TensorInfo {
  const { dy, input } = inputs;
  if (dy === undefined || input === undefined) throw new Error('MaxPoolGrad: needs inputs dy and input');
  const wasm = asWasmBackend(backend);
  const a = attrs as unknown as tf.MaxPoolGradAttrs;
  const info = tf.backend_util.computePool2DInfo(
    input.shape as [number, number, number, number], a.filterSize, a.strides, 1, a.pad, a.dimRoundingMode);
  const { batchSize, inHeight, inWidth, inChannels: channels, outHeight, outWidth } = info;
  const expectedDy = [batchSize, outHeight, outWidth, channels];
  if (dy.shape.join() !== expectedDy.join()) {
    throw new Error(`MaxPoolGrad: dy shape [${dy.shape}] does not match [${expectedDy}]`);
  }

  // Allocate first: growing the heap detaches earlier views of it.
  const dxInfo = wasm.makeOutput(input.shape, 'float32');
  const dx = wasm.typedArrayFromHeap(dxInfo) as Float32Array;
  const x = wasm.typedArrayFromHeap(input) as Float32Array;
  const g = wasm.typedArrayFromHeap(dy) as Float32Array;
  dx.fill(0);

  const best = new Float32Array(channels);
  const where = new Int32Array(channels);
  const { strideHeight, strideWidth, dilationHeight, dilationWidth } = info;
  const filterHeight = info.effectiveFilterHeight;
  const filterWidth = info.effectiveFilterWidth;
  const rowStride = inWidth * channels;
  for (let b = 0; b < batchSize; ++b) {
    const xBatch = b * inHeight * rowStride;
    for (let i = 0; i < outHeight; ++i) {
      const top = i * strideHeight - info.padInfo.top;
      for (let j = 0; j < outWidth; ++j) {
        const left = j * strideWidth - info.padInfo.left;
        best.fill(Number.NEGATIVE_INFINITY);
        where.fill(-1);
        for (let p = 0; p < filterHeight; p += dilationHeight) {
          const r = top + p;
          if (r < 0 || r >= inHeight) continue;
          for (let q = 0; q < filterWidth; q += dilationWidth) {
            const c0 = left + q;
            if (c0 < 0 || c0 >= inWidth) continue;
            const base = xBatch + r * rowStride + c0 * channels;
            for (let c = 0; c < channels; ++c) {
              const v = x[base + c] as number;
              if (v > (best[c] as number)) {
                best[c] = v;
                where[c] = base + c;
              }
            }
          }
        }
        const dyBase = ((b * outHeight + i) * outWidth + j) * channels;
        for (let c = 0; c < channels; ++c) {
          const at = where[c] as number;
          if (at >= 0) dx[at] = (dx[at] as number) + (g[dyBase + c] as number);
        }
      }
    }
  }
  return dxInfo;
}

export const maxPoolGradConfig: tf.KernelConfig = {
  kernelName: tf.MaxPoolGrad,
  backendName: WASM_BACKEND,
  kernelFunc: maxPoolGrad,
};
