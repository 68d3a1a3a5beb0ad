// Padding arithmetic that turns conv gradients into forward convs, per spatial axis.
// Pure numbers, no tensors: the kernels in this folder and their tests share it.
// Forward convention (tfjs): out[i] reads in[i * stride + k * dilation - padBefore], k < filterSize.

/**
 * Filter gradient as a forward conv over the input with dy as the "filter":
 * dW[k] = sum_i in[k * dilation + i * stride - padBefore] * dy[i], i.e. a conv with
 * stride = forward dilation and dilation = forward stride. Returns its explicit [before, after]
 * padding; the conv then yields at least `filterSize` outputs and the caller keeps the first
 * `filterSize` (extra ones come from input rows the forward pass never read).
 */
export function filterGradPads(
  inSize: number,
  outSize: number,
  filterSize: number,
  stride: number,
  dilation: number,
  padBefore: number,
): [number, number] {
  // Extent of the padded input the forward pass touches, measured from -padBefore.
  const touched = (filterSize - 1) * dilation + (outSize - 1) * stride + 1;
  return [padBefore, Math.max(0, touched - padBefore - inSize)];
}

/**
 * Input gradient as a stride-1 correlation of the flipped filter (dilation kept) with dy
 * "stride-dilated" to length outSize * stride (each dy entry followed by stride - 1 zeros).
 * Returns [before, after] padding of that dilated dy; a negative value means crop that many.
 */
export function inputGradPads(
  inSize: number,
  outSize: number,
  filterSize: number,
  stride: number,
  dilation: number,
  padBefore: number,
): [number, number] {
  const effective = (filterSize - 1) * dilation + 1;
  return [effective - 1 - padBefore, inSize + padBefore - outSize * stride];
}
