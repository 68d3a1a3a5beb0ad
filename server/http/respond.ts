// Writing HTTP answers: JSON bodies, error bodies `{ error: { code, message } }` and text files,
// all with cross-origin isolation headers (COOP/COEP: SharedArrayBuffer and precise timers for the
// pages, needed once WASM threads run in the Web Worker) and no caching.

import type { ServerResponse } from 'node:http';
import { SECURITY_HEADERS } from './security-headers.ts';

/** Cross-origin isolation, plus the security headers (CSP, nosniff, no referrer): on every answer. */
export const ISOLATION = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
  ...SECURITY_HEADERS,
};

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store', ...ISOLATION, ...headers });
  res.end(text);
}

export function sendText(res: ServerResponse, status: number, text: string, contentType: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': contentType, 'Cache-Control': 'no-store', ...ISOLATION, ...headers });
  res.end(text);
}

export function sendError(res: ServerResponse, status: number, code: string, message: string): void {
  sendJson(res, status, { error: { code, message } });
}
