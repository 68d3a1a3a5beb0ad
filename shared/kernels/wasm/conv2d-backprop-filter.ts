// Conv2DBackpropFilter for wasm: tfjs-backend-wasm 4.22 lacks it, so training any Conv1D, Conv2D,
// SeparableConv2D or Conv2DTranspose layer on wasm threw "Kernel ... not registered". Composed from
// wasm's XNNPACK Conv2D, Transpose and Slice, so the data never leaves the wasm heap.
import * as tf from '@tensorflow/tfjs';
import { composeOnWasm, pair, WASM_BACKEND, type ExplicitPadding } from './compose.ts';
import { filterGradPads } from './grad-geometry.ts';

type Attrs = tf.Conv2DBackpropFilterAttrs & {
  /** Not sent by tfjs 4.22 (its Conv2D gradient rejects dilation > 1); honoured if present. */
  dilations?: number | [number, number];
};

/**
 * dW[p,q,c,o] = sum_{b,i,j} x[b, i*sh + p*dh - top, j*sw + q*dw - left, c] * dy[b,i,j,o]
 * is a forward conv with channels c as the batch and batch b as the input channels:
 *   conv2d(x^T [C,H,W,B], dy^T [oH,oW,B,O], stride = (dh,dw), dilation = (sh,sw)) -> [C,fH,fW,O]
 * then transposed back to [fH,fW,C,O].
 */
function conv2DBackpropFilter({ inputs, backend, attrs }: Parameters<tf.KernelFunc>[0]): tf.TensorInfo {
  const { x, dy } = inputs;
  if (x === undefined || dy === undefined) throw new Error('Conv2DBackpropFilter: needs inputs x and dy');
  const a = attrs as unknown as Attrs;
  const dataFormat = tf.backend_util.convertConv2DDataFormat(a.dataFormat);
  if (dataFormat !== 'channelsLast') {
    // The wasm forward Conv2D is NHWC-only too, so no NCHW gradient can reach this kernel.
    throw new Error(`wasm Conv2DBackpropFilter supports dataFormat 'NHWC' only, got '${a.dataFormat}'`);
  }
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    a.filterShape,
    a.strides,
    pair(a.dilations),
    a.pad,
    a.dimRoundingMode,
    false,
    dataFormat,
  );
  const expectedDy = [info.batchSize, info.outHeight, info.outWidth, info.outChannels];
  if (dy.shape.join() !== expectedDy.join()) {
    throw new Error(`Conv2DBackpropFilter: dy shape [${dy.shape}] does not match [${expectedDy}]`);
  }

  return composeOnWasm(backend, (s) => {
    const xT = s.transpose(x, [3, 1, 2, 0]); // [C, H, W, B]
    const dyT = s.transpose(dy, [1, 2, 0, 3]); // [oH, oW, B, O]: the "filter"
    const rows = filterGradPads(
      info.inHeight, info.outHeight, info.filterHeight, info.strideHeight, info.dilationHeight, info.padInfo.top);
    const cols = filterGradPads(
      info.inWidth, info.outWidth, info.filterWidth, info.strideWidth, info.dilationWidth, info.padInfo.left);
    const pad: ExplicitPadding = [[0, 0], rows, cols, [0, 0]];
    const g = s.run(
      'Conv2D',
      { x: xT, filter: dyT },
      {
        strides: [info.dilationHeight, info.dilationWidth],
        dilations: [info.strideHeight, info.strideWidth],
        pad,
        dataFormat: 'NHWC',
      },
    ); // [C, >=fH, >=fW, O]
    const cropped = s.cropEnd(g, [info.inChannels, info.filterHeight, info.filterWidth, info.outChannels]);
    return s.transpose(cropped, [1, 2, 0, 3]); // [fH, fW, C, O]
  });
}

export const conv2DBackpropFilterConfig: tf.KernelConfig = {
  kernelName: tf.Conv2DBackpropFilter,
  backendName: WASM_BACKEND,
  kernelFunc: conv2DBackpropFilter,
};
