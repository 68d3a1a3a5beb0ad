// Backend choice in the tab: WebGPU when a real (non-fallback) adapter exists, WASM otherwise,
// CPU last. `?backend=` forces one. Runs inside the Web Worker (navigator.gpu exists there too).

import { tf } from '../../shared/training/tf.ts';
import '@tensorflow/tfjs-backend-webgpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import type { AdapterInfo, BackendName } from '../../shared/protocol/messages.ts';
import type { BackendReport } from './messages.ts';
import { registerFlockKernels } from '../../shared/kernels/index.ts';

// Gradient kernels tfjs-backend-wasm lacks (Conv2DBackpropFilter...) and fixes (MaxPoolGrad).
registerFlockKernels();

interface GpuLike {
  requestAdapter(): Promise<{ info?: { vendor: string; architecture: string; description: string }; isFallbackAdapter?: boolean } | null>;
}

export async function adapterInfo(): Promise<AdapterInfo | null> {
  const gpu = (globalThis.navigator as unknown as { gpu?: GpuLike }).gpu;
  if (!gpu) return null;
  try {
    const a = await gpu.requestAdapter();
    if (!a) return null;
    const info = a.info ?? { vendor: 'unknown', architecture: 'unknown', description: '' };
    const fallback = a.isFallbackAdapter ?? (info as { isFallbackAdapter?: boolean }).isFallbackAdapter ?? false;
    return { vendor: info.vendor, architecture: info.architecture, description: info.description, isFallbackAdapter: fallback || info.architecture === 'swiftshader' };
  } catch {
    return null;
  }
}

async function tryBackend(name: BackendName): Promise<boolean> {
  try {
    return (await tf.setBackend(name)) && tf.getBackend() === name;
  } catch {
    return false;
  }
}

export async function chooseBackend(forced: BackendName | null): Promise<BackendReport> {
  setWasmPaths('/wasm/');
  // tfjs's threaded WASM build starts its pthreads from blob URLs, which fail inside a module Web
  // Worker ("e is not defined"); and threads measured no gain on 2-core machines. SIMD only.
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  const adapter = await adapterInfo();
  const threads = false;
  const order: { name: BackendName; reason: string }[] = [];
  if (forced) {
    order.push({ name: forced, reason: `forced by ?backend=${forced}` });
  } else if (adapter && !adapter.isFallbackAdapter) {
    order.push({ name: 'webgpu', reason: `WebGPU adapter ${adapter.vendor} ${adapter.architecture}` });
  }
  const wasmReason = !adapter ? 'no WebGPU adapter in this browser: using WASM' : adapter.isFallbackAdapter ? 'only a software WebGPU adapter (slower than WASM): using WASM' : 'WebGPU failed to start: using WASM';
  order.push({ name: 'wasm', reason: forced ? `${forced} unavailable: using WASM` : wasmReason });
  order.push({ name: 'cpu', reason: 'WASM unavailable: using plain JavaScript (slow)' });
  for (const o of order) {
    if (await tryBackend(o.name)) {
      await tf.ready();
      return { backend: o.name, adapter: o.name === 'webgpu' ? adapter : adapter, reason: o.reason, wasmThreads: o.name === 'wasm' && threads };
    }
  }
  throw new Error('no tfjs backend could start');
}
