// DepthwiseConv2dNativeBackpropInput for wasm: missing in tfjs-backend-wasm 4.22, so backprop
// through a DepthwiseConv2D / SeparableConv2D layer on wasm threw "not registered". Composed from
// wasm's XNNPACK DepthwiseConv2dNative, PadV2, Reverse, Reshape, Slice and Sum (wasm heap only).
import * as tf from '@tensorflow/tfjs';
import { composeOnWasm, pair, WASM_BACKEND, type ExplicitPadding, type KernelScope } from './compose.ts';
import { inputGradPads } from './grad-geometry.ts';

/**
 * dx[b,h,w,c] = sum_m sum_{p,q} dyD[b, h + top - p*dh, w + left - q*dw, c*M+m] * W[p,q,c,m], where
 * dyD is dy with stride-1 zeros after each entry. That is a stride-1 depthwise correlation of dyD
 * (C*M channels) with the spatially flipped filter [fH,fW,C*M,1] at the forward dilation, then a sum
 * over m.
 */
function depthwiseConv2dNativeBackpropInput(
  { inputs, backend, attrs }: Parameters<tf.KernelFunc>[0],
): tf.TensorInfo {
  const { dy, filter } = inputs;
  if (dy === undefined || filter === undefined) {
    throw new Error('DepthwiseConv2dNativeBackpropInput: needs inputs dy and filter');
  }
  const a = attrs as unknown as tf.DepthwiseConv2dNativeBackpropInputAttrs;
  const info = tf.backend_util.computeConv2DInfo(
    a.inputShape,
    filter.shape as [number, number, number, number],
    a.strides,
    pair(a.dilations),
    a.pad,
    a.dimRoundingMode,
    true,
  );
  const batch = info.batchSize;
  const channels = info.inChannels;
  const outChannels = info.outChannels;
  const multiplier = outChannels / channels;
  const expectedDy = [batch, info.outHeight, info.outWidth, outChannels];
  if (dy.shape.join() !== expectedDy.join()) {
    throw new Error(`DepthwiseConv2dNativeBackpropInput: dy shape [${dy.shape}] does not match [${expectedDy}]`);
  }

  return composeOnWasm(backend, (s) => {
    const dilatedDy = strideDilate(s, dy, info.strideHeight, info.strideWidth); // [B, oH*sh, oW*sw, C*M]
    const rows = inputGradPads(
      info.inHeight, info.outHeight, info.filterHeight, info.strideHeight, info.dilationHeight, info.padInfo.top);
    const cols = inputGradPads(
      info.inWidth, info.outWidth, info.filterWidth, info.strideWidth, info.dilationWidth, info.padInfo.left);
    const trimmed = cropNegativePads(s, dilatedDy, rows, cols);
    const pad: ExplicitPadding = [
      [0, 0],
      [Math.max(0, rows[0]), Math.max(0, rows[1])],
      [Math.max(0, cols[0]), Math.max(0, cols[1])],
      [0, 0],
    ];
    const flipped = s.reshape(
      s.run('Reverse', { x: filter }, { dims: [0, 1] }),
      [info.filterHeight, info.filterWidth, outChannels, 1],
    );
    const perM = s.run(
      'DepthwiseConv2dNative',
      { x: trimmed, filter: flipped },
      { strides: [1, 1], dilations: [info.dilationHeight, info.dilationWidth], pad },
    ); // [B, H, W, C*M], channel index c*M + m
    if (multiplier === 1) return perM;
    const split = s.reshape(perM, [batch, info.inHeight, info.inWidth, channels, multiplier]);
    return s.run('Sum', { x: split }, { axis: [4], keepDims: false });
  });
}

/** [B,oH,oW,K] -> [B,oH*sh,oW*sw,K] with dy[i,j] at (i*sh, j*sw) and zeros elsewhere. */
function strideDilate(s: KernelScope, dy: tf.TensorInfo, sh: number, sw: number): tf.TensorInfo {
  if (sh === 1 && sw === 1) return dy;
  const [b = 0, h = 0, w = 0, k = 0] = dy.shape;
  const six = s.reshape(dy, [b, h, 1, w, 1, k]);
  const padded = s.run('PadV2', { x: six }, {
    paddings: [[0, 0], [0, 0], [0, sh - 1], [0, 0], [0, sw - 1], [0, 0]],
    constantValue: 0,
  });
  return s.reshape(padded, [b, h * sh, w * sw, k]);
}

/** Applies the negative parts of [before, after] paddings as crops (rare: explicit pads wider than the filter). */
function cropNegativePads(
  s: KernelScope, x: tf.TensorInfo, rows: [number, number], cols: [number, number],
): tf.TensorInfo {
  if (rows[0] >= 0 && rows[1] >= 0 && cols[0] >= 0 && cols[1] >= 0) return x;
  const [b = 0, h = 0, w = 0, k = 0] = x.shape;
  const top = Math.max(0, -rows[0]);
  const left = Math.max(0, -cols[0]);
  const height = h - top - Math.max(0, -rows[1]);
  const width = w - left - Math.max(0, -cols[1]);
  return s.run('Slice', { x }, { begin: [0, top, left, 0], size: [b, height, width, k] });
}

export const depthwiseConv2dNativeBackpropInputConfig: tf.KernelConfig = {
  kernelName: tf.DepthwiseConv2dNativeBackpropInput,
  backendName: WASM_BACKEND,
  kernelFunc: depthwiseConv2dNativeBackpropInput,
};
