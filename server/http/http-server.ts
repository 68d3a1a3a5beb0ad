// HTTP face of the coordinator: the built pages (with the cross-origin isolation headers WASM
// threads need), tfjs's .wasm binaries, the JSON API and model downloads. Admin routes require
// `Authorization: Bearer <token>`. Routing only: every answer comes from the registry or a job.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createReadStream, existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import sirv from 'sirv';
import type { JobRegistry } from '../jobs/registry.ts';
import { bearerOf, tokenMatches } from './auth.ts';
import { ErrorCode } from '../../shared/protocol/errors.ts';

export interface HttpDeps {
  readonly registry: JobRegistry;
  readonly adminToken: string;
  /** Built client pages (vite build output); may not exist in API-only tests. */
  readonly clientDir: string;
  readonly workers: () => unknown[];
}

const ISOLATION = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store', ...ISOLATION, ...headers });
  res.end(text);
}

const error = (res: ServerResponse, status: number, code: string, message: string): void => send(res, status, { error: { code, message } });

export function wasmDir(): string {
  const require = createRequire(import.meta.url);
  return path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist');
}

export function createHttpServer(deps: HttpDeps): Server {
  const statics = existsSync(deps.clientDir) ? sirv(deps.clientDir, {
    dev: false,
    etag: true,
    single: false,
    setHeaders: (res) => {
      for (const [k, v] of Object.entries(ISOLATION)) res.setHeader(k, v);
    },
  }) : (_req: IncomingMessage, res: ServerResponse) => error(res, 503, 'NOT_BUILT', 'pages are not built: run `npm run build`');
  const wasmRoot = wasmDir();

  const isAdmin = (req: IncomingMessage): boolean => tokenMatches(deps.adminToken, bearerOf(req));

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const parts = url.pathname.split('/').filter(Boolean);
    const method = req.method ?? 'GET';

    if (parts[0] === 'wasm' && parts.length === 2 && /^[\w.-]+\.wasm$/.test(parts[1]!)) {
      const file = path.join(wasmRoot, parts[1]!);
      try {
        const st = await stat(file);
        res.writeHead(200, { 'Content-Type': 'application/wasm', 'Content-Length': st.size, 'Cache-Control': 'public, max-age=86400', ...ISOLATION });
        createReadStream(file).pipe(res);
      } catch {
        error(res, 404, 'NOT_FOUND', 'no such wasm file');
      }
      return;
    }

    if (parts[0] !== 'api') {
      if (parts[0] === 'admin' && parts.length === 1 && !url.pathname.endsWith('/')) {
        res.writeHead(301, { Location: '/admin/' + url.search });
        res.end();
        return;
      }
      statics(req, res, () => error(res, 404, 'NOT_FOUND', `no page ${url.pathname}`));
      return;
    }

    // ---- /api ----
    if (parts[1] === 'health') return send(res, 200, { ok: true });
    if (parts[1] === 'workers' && parts.length === 2) {
      if (!isAdmin(req)) return error(res, 401, ErrorCode.Unauthorized, 'admin token required');
      return send(res, 200, deps.workers());
    }
    if (parts[1] !== 'jobs') return error(res, 404, 'NOT_FOUND', 'no such endpoint');
    if (parts.length === 2 && method === 'GET') return send(res, 200, deps.registry.all().map((j) => j.summary()));

    const job = parts[2] ? deps.registry.get(parts[2]) : undefined;
    if (!job) return error(res, 404, ErrorCode.UnknownJob, `no job ${parts[2] ?? ''}`);
    const rest = parts.slice(3);

    if (rest.length === 0 && method === 'GET') return send(res, 200, job.summary());
    if (rest[0] === 'metrics' && method === 'GET') {
      return send(res, 200, { ...job.metricHistory(), staleness: job.stalenessHistogram() });
    }
    if (rest[0] === 'checkpoints' && method === 'GET') {
      const infos = await deps.registry.storeFor(job.id).infos();
      return send(res, 200, infos.map((i) => ({ version: i.version, createdAt: i.createdAt })));
    }
    if (rest[0] === 'model' && method === 'GET') return serveModel(res, job.id, rest[1]);
    if (method === 'POST' && rest.length === 1 && ['pause', 'resume', 'cancel'].includes(rest[0]!)) {
      if (!isAdmin(req)) return error(res, 401, ErrorCode.Unauthorized, 'admin token required');
      if (rest[0] === 'pause') job.pause();
      else if (rest[0] === 'resume') job.resume();
      else job.cancel();
      return send(res, 200, job.summary());
    }
    return error(res, 404, 'NOT_FOUND', 'no such endpoint');
  }

  /** model.json of the newest verified checkpoint, its weights file named by version. */
  async function serveModel(res: ServerResponse, jobId: string, file: string | undefined): Promise<void> {
    const store = deps.registry.storeFor(jobId);
    if (file === 'model.json') {
      const [latest] = await store.infos();
      if (!latest) return error(res, 404, 'NOT_FOUND', 'no checkpoint yet');
      const model = JSON.parse(await readFile(path.join(latest.dir, 'model.json'), 'utf8')) as { weightsManifest: { paths: string[] }[] };
      for (const group of model.weightsManifest) group.paths = [`weights-v${latest.version}.bin`];
      return send(res, 200, model);
    }
    const m = file ? /^weights-v(\d+)\.bin$/.exec(file) : null;
    if (!m) return error(res, 404, 'NOT_FOUND', 'no such model file');
    const entry = (await store.list()).find((c) => c.version === Number(m[1]));
    if (!entry) return error(res, 404, 'NOT_FOUND', 'that checkpoint is gone; fetch model.json again');
    const data = await readFile(path.join(entry.dir, 'weights.bin'));
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': data.byteLength, 'Cache-Control': 'no-store', ...ISOLATION });
    res.end(data);
  }

  return createServer((req, res) => {
    route(req, res).catch((err: Error) => {
      if (!res.headersSent) error(res, 500, ErrorCode.Internal, err.message);
      else res.destroy();
    });
  });
}
