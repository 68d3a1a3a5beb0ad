// HTTP face of the coordinator: the built pages (with the cross-origin isolation headers WASM
// threads need), tfjs's .wasm binaries, the public JSON API and model downloads. Admin routes
// (admin-api.ts) require `Authorization: Bearer <token>`, checked here before any of them runs.
// Routing only: every answer comes from the registry, a job or the stat books.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createReadStream, existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import sirv from 'sirv';
import type { JobRegistry } from '../jobs/registry.ts';
import { bearerOf, tokenMatches } from './auth.ts';
import { ErrorCode } from '../../shared/protocol/errors.ts';
import { BodyError, handleAdminApi, type AdminApiDeps } from './admin-api.ts';
import { ISOLATION, sendError, sendJson } from './respond.ts';
import type { UploadDeps } from './job-upload.ts';
import type { TelemetryBook } from '../jobs/job-telemetry.ts';
import type { WorkerStatsBook } from '../jobs/worker-stats.ts';
import { controlRefusal, type JobControl } from '../jobs/job-controls.ts';
import { FAVICON_SVG } from './favicon.ts';
import type { FlockMetrics } from './metrics.ts';

export interface HttpDeps {
  readonly registry: JobRegistry;
  readonly adminToken: string;
  /** Built client pages (vite build output); may not exist in API-only tests. */
  readonly clientDir: string;
  readonly workers: () => unknown[];
  readonly workerStats?: WorkerStatsBook | undefined;
  readonly telemetry?: TelemetryBook | undefined;
  /** Job-file submissions (POST /api/jobs with a job file). */
  readonly upload?: UploadDeps | undefined;
  /** A worker's validated work (public: the volunteer page shows its own). */
  readonly credit?: ((workerId: string) => unknown) | undefined;
  /** Refusals, spot checks, connections and the message cap (admin). */
  readonly security?: (() => unknown) | undefined;
  /** Prometheus metrics at GET /metrics (admin token required). */
  readonly metrics?: FlockMetrics | undefined;
}

const send = sendJson;
/** Model files are public (volunteers receive the weights anyway): any origin may tf.loadLayersModel them. */
const PUBLIC_MODEL = { 'Access-Control-Allow-Origin': '*', 'Cross-Origin-Resource-Policy': 'cross-origin' };
const error = sendError;

/** Job sub-resources only an admin may call. */
const ADMIN_JOB_ACTIONS = new Set(['pause', 'resume', 'cancel', 'settings', 'view', 'history.csv', 'history.json']);

/** Whether `/api/...` names an admin endpoint (so the token is checked before anything runs). */
export function isAdminRoute(method: string, parts: readonly string[]): boolean {
  if (parts[1] === 'session' || parts[1] === 'demos' || parts[1] === 'workers' || parts[1] === 'security') return true;
  if (parts[1] !== 'jobs') return false;
  if (parts.length === 2) return method !== 'GET';
  return parts.length === 4 && ADMIN_JOB_ACTIONS.has(parts[3]!);
}

export function wasmDir(): string {
  const require = createRequire(import.meta.url);
  return path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist');
}

export function createHttpServer(deps: HttpDeps): Server {
  return createServer(createHttpHandler(deps));
}

/** The request handler alone, for a server that was bound before the coordinator was assembled. */
export function createHttpHandler(deps: HttpDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const statics = existsSync(deps.clientDir) ? sirv(deps.clientDir, {
    dev: false,
    etag: true,
    single: false,
    setHeaders: (res) => {
      for (const [k, v] of Object.entries(ISOLATION)) res.setHeader(k, v);
    },
  }) : (_req: IncomingMessage, res: ServerResponse) => error(res, 503, 'NOT_BUILT', 'pages are not built: run `npm run build`');
  const wasmRoot = wasmDir();

  /** Why an admin request is refused (a missing token and a wrong one read differently), or null. */
  const adminRefusal = (req: IncomingMessage): string | null => {
    const given = bearerOf(req);
    if (!given) return 'admin token required: send Authorization: Bearer <token> (printed by the coordinator at start-up)';
    return tokenMatches(deps.adminToken, given) ? null : 'admin token refused: it does not match this coordinator\'s token';
  };

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Parsed against a fixed origin: '//x' would otherwise read as a host name (or throw).
    let url: URL;
    try {
      const raw = req.url ?? '/';
      url = new URL(`http://localhost${raw.startsWith('/') ? '' : '/'}${raw}`);
    } catch {
      return error(res, 400, ErrorCode.BadRequest, 'malformed request URL');
    }
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

    if (url.pathname === '/metrics' && deps.metrics) {
      if (method !== 'GET') return error(res, 405, 'METHOD_NOT_ALLOWED', 'GET /metrics');
      const refused = adminRefusal(req);
      if (refused) return error(res, 401, ErrorCode.Unauthorized, refused);
      return deps.metrics.serve(res);
    }

    if (parts[0] !== 'api') {
      if ((url.pathname === '/favicon.svg' || url.pathname === '/favicon.ico') && method === 'GET') {
        res.writeHead(200, { 'Content-Type': 'image/svg+xml', 'Cache-Control': 'public, max-age=86400', ...ISOLATION });
        res.end(FAVICON_SVG);
        return;
      }
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
    if (isAdminRoute(method, parts)) {
      const refused = adminRefusal(req);
      if (refused) return error(res, 401, ErrorCode.Unauthorized, refused);
      if (parts[1] === 'workers' && parts.length === 2 && method === 'GET') return send(res, 200, deps.workers());
      if (parts[1] === 'security' && parts.length === 2 && method === 'GET' && deps.security) return send(res, 200, deps.security());
      const job = parts[1] === 'jobs' && parts[2] ? deps.registry.get(parts[2]) : undefined;
      const rest = parts.slice(3);
      if (job && method === 'POST' && rest.length === 1 && ['pause', 'resume', 'cancel'].includes(rest[0]!)) {
        const refusal = controlRefusal(rest[0] as JobControl, job.status);
        if (refusal) return error(res, 409, ErrorCode.WrongStatus, refusal);
        // Durable (checkpoint written) before it is acknowledged.
        if (rest[0] === 'pause') await job.pause();
        else if (rest[0] === 'resume') await job.resume();
        else await job.cancel();
        return send(res, 200, job.summary());
      }
      const adminDeps: AdminApiDeps = { registry: deps.registry, workerStats: deps.workerStats, telemetry: deps.telemetry, upload: deps.upload };
      try {
        if (await handleAdminApi(req, res, parts, adminDeps)) return;
      } catch (err) {
        if (err instanceof BodyError) return error(res, err.status, ErrorCode.BadRequest, err.message);
        throw err;
      }
      if (parts[1] === 'jobs' && parts[2] && !job) return error(res, 404, ErrorCode.UnknownJob, `no job ${parts[2]}`);
      return error(res, 404, 'NOT_FOUND', 'no such endpoint');
    }
    if (parts[1] === 'credit' && parts.length === 3 && method === 'GET' && deps.credit) return send(res, 200, deps.credit(parts[2]!.slice(0, 128)));
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
      const evals = job.metricHistory().evaluations;
      const best = job.summary().best;
      const bestInfo = best ? (await deps.registry.bestStoreFor(job.id).infos()).find((i) => i.version === best.version) : undefined;
      // Each checkpoint with the newest evaluation of a version at or before it; `latest` is the
      // newest, `best` the best by the job's metric (listed last when keep-last-N has rotated it out).
      const rows = infos.map((i, k) => {
        let e: (typeof evals)[number] | undefined;
        for (const x of evals) if (x.version <= i.version && (!e || x.version >= e.version)) e = x;
        return { version: i.version, createdAt: i.createdAt, evaluatedVersion: e?.version ?? null, testAccuracy: e?.testAccuracy ?? null, testLoss: e?.testLoss ?? null, latest: k === 0, best: best?.version === i.version, which: k === 0 ? 'latest' : 'kept' };
      });
      if (best && bestInfo && !rows.some((r) => r.best)) {
        rows.push({ version: best.version, createdAt: bestInfo.createdAt, evaluatedVersion: best.version, testAccuracy: best.testAccuracy, testLoss: best.testLoss, latest: false, best: true, which: 'best' });
      }
      return send(res, 200, rows);
    }
    if (rest[0] === 'model' && method === 'GET') {
      const which = url.searchParams.get('which');
      if (which !== null && which !== 'best' && which !== 'latest') return error(res, 400, ErrorCode.BadRequest, 'which must be best or latest');
      return serveModel(res, job.id, rest[1], url.searchParams.get('version'), which === 'best');
    }
    if (rest.length === 1 && rest[0] === 'data' && method === 'GET') return send(res, 200, await deps.registry.dataInfo(job.id), PUBLIC_MODEL);
    return error(res, 404, 'NOT_FOUND', 'no such endpoint');
  }

  /**
   * model.json of the newest verified checkpoint (or of `?version=N` while it is kept, so a
   * model.json and its weights file can be fetched as a matching pair), weights named by version.
   */
  async function serveModel(res: ServerResponse, jobId: string, file: string | undefined, version: string | null, best: boolean): Promise<void> {
    const store = deps.registry.storeFor(jobId);
    const bestStore = deps.registry.bestStoreFor(jobId);
    if (file === 'model.json' && best) {
      // The best checkpoint lives apart from the rotation; its weights file says so in its name.
      const b = (await bestStore.infos())[0];
      if (!b) return error(res, 404, 'NOT_FOUND', 'no best checkpoint yet (the job has not been evaluated)');
      const model = JSON.parse((await bestStore.file(b.dir, 'model.json')).toString('utf8')) as { weightsManifest: { paths: string[] }[] };
      for (const group of model.weightsManifest) group.paths = [`weights-best-v${b.version}.bin`];
      return send(res, 200, model, PUBLIC_MODEL);
    }
    const bm = file ? /^weights-best-v(\d+)\.bin$/.exec(file) : null;
    if (bm) {
      const entry = (await bestStore.infos()).find((c) => c.version === Number(bm[1]));
      if (!entry) return error(res, 404, 'NOT_FOUND', 'a better checkpoint has replaced that one; fetch model.json?which=best again');
      const data = await bestStore.file(entry.dir, 'weights.bin');
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': data.byteLength, 'Cache-Control': 'no-store', ...ISOLATION, ...PUBLIC_MODEL });
      res.end(data);
      return;
    }
    if (file === 'model.json') {
      const infos = await store.infos();
      const latest = version === null ? infos[0] : infos.find((i) => String(i.version) === version);
      if (!latest) return error(res, 404, 'NOT_FOUND', version === null ? 'no checkpoint yet' : `checkpoint v${version} is not kept (any more)`);
      const model = JSON.parse((await store.file(latest.dir, 'model.json')).toString('utf8')) as { weightsManifest: { paths: string[] }[] };
      for (const group of model.weightsManifest) group.paths = [`weights-v${latest.version}.bin`];
      return send(res, 200, model, PUBLIC_MODEL);
    }
    const m = file ? /^weights-v(\d+)\.bin$/.exec(file) : null;
    if (!m) return error(res, 404, 'NOT_FOUND', 'no such model file');
    const entry = (await store.infos()).find((c) => c.version === Number(m[1]));
    if (!entry) return error(res, 404, 'NOT_FOUND', 'that checkpoint is gone; fetch model.json again');
    const data = await store.file(entry.dir, 'weights.bin');
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': data.byteLength, 'Cache-Control': 'no-store', ...ISOLATION, ...PUBLIC_MODEL });
    res.end(data);
  }

  return (req, res) => {
    route(req, res).catch((err: Error) => {
      // Details (paths, stack) go to the log, not to the client.
      // The path only: a query string may carry a token, and tokens are never logged.
      console.warn(`[flock] WARN HTTP ${req.method} ${(req.url ?? '').split('?')[0]}: ${err.message}`);
      if (!res.headersSent) error(res, 500, ErrorCode.Internal, 'internal error; see the coordinator log');
      else res.destroy();
    });
  };
}
