// Builds the pages (volunteer `/`, dashboard `/admin/`, gradient coverage `/coverage/`) and the training Web Worker into
// dist/client, which the coordinator serves. tfjs's .wasm files are served by the coordinator at /wasm/.
import { defineConfig, type Plugin } from 'vite';
import { resolve } from 'node:path';

/**
 * tfjs-backend-wasm starts each pthread of its threaded SIMD build from a Blob of
 * `wasmFactoryThreadedSimd.toString()`. Once bundled and minified, that function refers to names
 * the minifier moved outside it (the pthread then dies with "e is not defined"). This gives the
 * factory a toString() that returns Emscripten's original, self-contained script instead (a string
 * literal, which no minifier touches), so everything else stays minified.
 */
function tfjsThreadedWasmSource(): Plugin {
  return {
    name: 'flock:tfjs-threaded-wasm-source',
    transform(code, id) {
      if (!/[\\/]tfjs-backend-wasm[\\/]wasm-out[\\/]tfjs-backend-wasm-threaded-simd\.js$/.test(id)) return null;
      // tfjs writes `var WasmBackendModuleThreadedSimd = ` + toString(): the `undefined;` ends that
      // statement, and the original script then defines the factory itself.
      const source = JSON.stringify(`undefined;\n${code}`);
      return { code: `${code}\nWasmBackendModuleThreadedSimd.toString = () => ${source};\n`, map: null };
    },
  };
}

export default defineConfig({
  root: resolve(import.meta.dirname, 'client'),
  base: '/',
  plugins: [tfjsThreadedWasmSource()],
  build: {
    outDir: resolve(import.meta.dirname, 'dist/client'),
    emptyOutDir: true,
    target: 'es2022',
    chunkSizeWarningLimit: 4000,
    rollupOptions: {
      input: {
        volunteer: resolve(import.meta.dirname, 'client/index.html'),
        admin: resolve(import.meta.dirname, 'client/admin/index.html'),
        coverage: resolve(import.meta.dirname, 'client/coverage/index.html'),
      },
    },
  },
  worker: { format: 'es', plugins: () => [tfjsThreadedWasmSource()] },
  server: {
    headers: { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' },
  },
});
