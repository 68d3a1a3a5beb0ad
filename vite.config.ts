// Builds the pages (volunteer `/`, dashboard `/admin/`, gradient coverage `/coverage/`) and the training Web Worker into
// dist/client, which the coordinator serves. tfjs's .wasm files are served by the coordinator at /wasm/.
import { defineConfig } from 'vite';
import { resolve } from 'node:path';

export default defineConfig({
  root: resolve(import.meta.dirname, 'client'),
  base: '/',
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
  worker: { format: 'es' },
  server: {
    headers: { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' },
  },
});
