// Lets a Flock wasm kernel call the wasm backend's own registered kernels (Conv2D, Transpose,
// PadV2...) so tensors stay in the wasm heap, and frees every intermediate those calls allocate.
// Owns no state beyond one scope per kernel call; shared by the kernels in this folder.
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

export const WASM_BACKEND = 'wasm';

/** Explicit NHWC padding as the conv kernels take it: [[0,0],[top,bottom],[left,right],[0,0]]. */
export type ExplicitPadding = [[number, number], [number, number], [number, number], [number, number]];

/** Narrows the untyped `backend` a kernelFunc receives; fails loudly if run on another backend. */
export function asWasmBackend(backend: unknown): BackendWasm {
  if (
    typeof backend !== 'object' ||
    backend === null ||
    !('dataIdMap' in backend) ||
    !('typedArrayFromHeap' in backend) ||
    !('makeOutput' in backend)
  ) {
    throw new Error('flock kernels: a wasm kernel was called with a non-wasm backend');
  }
  return backend as BackendWasm;
}

/** [h, w] from the `number | [number, number]` form tfjs attributes use. */
export function pair(v: number | [number, number] | undefined, fallback = 1): [number, number] {
  if (v === undefined) return [fallback, fallback];
  return typeof v === 'number' ? [v, v] : v;
}

/**
 * One kernel call's worth of intermediates. Every TensorInfo that `run` returns is owned by the
 * scope and freed by `dispose()` unless handed out with `keep()`. Reshape outputs share their
 * input's buffer with a reference count, so freeing them is always safe.
 */
export class KernelScope {
  private readonly owned = new Set<tf.TensorInfo>();

  constructor(readonly backend: BackendWasm) {}

  run(kernelName: string, inputs: tf.NamedTensorInfoMap, attrs: tf.NamedAttrMap = {}): tf.TensorInfo {
    const kernel = tf.getKernel(kernelName, WASM_BACKEND);
    if (kernel === undefined) {
      throw new Error(`flock kernels: wasm kernel '${kernelName}' is not registered`);
    }
    const out = kernel.kernelFunc({ inputs, backend: this.backend, attrs });
    const outs = Array.isArray(out) ? out : [out];
    for (const o of outs) this.owned.add(o);
    const first = outs[0];
    if (first === undefined || outs.length !== 1) {
      throw new Error(`flock kernels: wasm kernel '${kernelName}' returned ${outs.length} outputs, expected 1`);
    }
    return first;
  }

  reshape(x: tf.TensorInfo, shape: number[]): tf.TensorInfo {
    return this.run('Reshape', { x }, { shape });
  }

  transpose(x: tf.TensorInfo, perm: number[]): tf.TensorInfo {
    return this.run('Transpose', { x }, { perm });
  }

  /** Keeps the first `size` entries along each axis; no kernel call when nothing is cut. */
  cropEnd(x: tf.TensorInfo, size: number[]): tf.TensorInfo {
    if (size.every((s, i) => s === x.shape[i])) return x;
    return this.run('Slice', { x }, { begin: size.map(() => 0), size });
  }

  /** Removes `x` from the scope so `dispose()` leaves it alive; the caller now owns it. */
  keep(x: tf.TensorInfo): tf.TensorInfo {
    if (!this.owned.delete(x)) {
      // Never hand an input (or something this scope did not make) back as an output: the engine
      // would wrap the same buffer twice and free it twice. Copy it instead.
      const copy = this.run('Identity', { x });
      this.owned.delete(copy);
      return copy;
    }
    return x;
  }

  dispose(): void {
    for (const t of this.owned) this.backend.disposeData(t.dataId);
    this.owned.clear();
  }
}

/** Runs `body` in a fresh scope and returns its result with every other intermediate freed. */
export function composeOnWasm(backend: unknown, body: (scope: KernelScope) => tf.TensorInfo): tf.TensorInfo {
  const scope = new KernelScope(asWasmBackend(backend));
  try {
    return scope.keep(body(scope));
  } finally {
    scope.dispose();
  }
}
