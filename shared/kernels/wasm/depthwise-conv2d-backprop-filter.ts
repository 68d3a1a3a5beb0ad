// DepthwiseConv2dNativeBackpropFilter for wasm: missing in tfjs-backend-wasm 4.22, so training
// DepthwiseConv2D / SeparableConv2D layers on wasm threw "not registered". Composed from wasm's
// XNNPACK DepthwiseConv2dNative, Transpose, Reshape, Slice and Sum; data stays in the wasm heap.
import * as tf from '@tensorflow/tfjs';
import { composeOnWasm, pair, WASM_BACKEND, type ExplicitPadding } from './compose.ts';
import { filterGradPads } from './grad-geometry.ts';

/**
 * dW[p,q,c,m] = sum_b sum_{i,j} x[b, i*sh + p*dh - top, j*sw + q*dw - left, c] * dy[b,i,j,c*M+m].
 * The inner sum is a depthwise conv of one image with (b,c) as its channels:
 *   depthwise(x as [1,H,W,B*C], dy as filter [oH,oW,B*C,M], stride = (dh,dw), dilation = (sh,sw))
 * gives [1,fH,fW,B*C*M]; summing over b gives [fH,fW,C,M].
 */
function depthwiseConv2dNativeBackpropFilter(
  { inputs, backend, attrs }: Parameters<tf.KernelFunc>[0],
): tf.TensorInfo {
  const { x, dy } = inputs;
  if (x === undefined || dy === undefined) {
    throw new Error('DepthwiseConv2dNativeBackpropFilter: needs inputs x and dy');
  }
  const a = attrs as unknown as tf.DepthwiseConv2dNativeBackpropFilterAttrs;
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    a.filterShape,
    a.strides,
    pair(a.dilations),
    a.pad,
    a.dimRoundingMode,
    true,
  );
  const batch = info.batchSize;
  const channels = info.inChannels;
  const multiplier = info.outChannels / info.inChannels;
  const expectedDy = [batch, info.outHeight, info.outWidth, info.outChannels];
  if (dy.shape.join() !== expectedDy.join()) {
    throw new Error(`DepthwiseConv2dNativeBackpropFilter: dy shape [${dy.shape}] does not match [${expectedDy}]`);
  }

  return composeOnWasm(backend, (s) => {
    // [B,H,W,C] -> [H,W,B,C] -> one image with B*C channels, channel index b*C + c.
    const xImage = s.reshape(s.transpose(x, [1, 2, 0, 3]), [1, info.inHeight, info.inWidth, batch * channels]);
    // [B,oH,oW,C*M] -> [oH,oW,B,C,M] -> filter [oH,oW,B*C,M].
    const dy5 = s.reshape(dy, [batch, info.outHeight, info.outWidth, channels, multiplier]);
    const dyFilter = s.reshape(
      s.transpose(dy5, [1, 2, 0, 3, 4]), [info.outHeight, info.outWidth, batch * channels, multiplier]);
    const rows = filterGradPads(
      info.inHeight, info.outHeight, info.filterHeight, info.strideHeight, info.dilationHeight, info.padInfo.top);
    const cols = filterGradPads(
      info.inWidth, info.outWidth, info.filterWidth, info.strideWidth, info.dilationWidth, info.padInfo.left);
    const pad: ExplicitPadding = [[0, 0], rows, cols, [0, 0]];
    const g = s.run(
      'DepthwiseConv2dNative',
      { x: xImage, filter: dyFilter },
      {
        strides: [info.dilationHeight, info.dilationWidth],
        dilations: [info.strideHeight, info.strideWidth],
        pad,
      },
    ); // [1, >=fH, >=fW, B*C*M], channel index (b*C + c)*M + m
    const cropped = s.cropEnd(g, [1, info.filterHeight, info.filterWidth, batch * channels * multiplier]);
    const perBatch = s.reshape(cropped, [info.filterHeight, info.filterWidth, batch, channels * multiplier]);
    const summed = batch === 1
      ? perBatch
      : s.run('Sum', { x: perBatch }, { axis: [2], keepDims: false });
    return s.reshape(summed, [info.filterHeight, info.filterWidth, channels, multiplier]);
  });
}

export const depthwiseConv2dNativeBackpropFilterConfig: tf.KernelConfig = {
  kernelName: tf.DepthwiseConv2dNativeBackpropFilter,
  backendName: WASM_BACKEND,
  kernelFunc: depthwiseConv2dNativeBackpropFilter,
};
