// Security headers on every answer: a Content-Security-Policy that still lets the pages run
// tfjs's WebAssembly ('wasm-unsafe-eval'), its Web Worker and the wasm backend's pthread workers
// (created from blob: URLs), and talk to this coordinator only; no MIME sniffing; no referrer.

export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self' 'wasm-unsafe-eval' blob:",
  "worker-src 'self' blob:",
  "connect-src 'self'",
  "img-src 'self' data: blob:",
  // Style attributes set in the pages' HTML; no script can come from a style.
  "style-src 'self' 'unsafe-inline'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

export const SECURITY_HEADERS = {
  'Content-Security-Policy': CONTENT_SECURITY_POLICY,
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
};
