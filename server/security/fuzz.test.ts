// Property-based fuzzing (fast-check) of every worker socket handler and every HTTP route, driven
// in-process for speed (no network): >= 100,000 generated inputs in all. Properties: no handler
// throws, every ack is called at most once and is a well-formed answer, no unhandled rejection,
// no HTTP 5xx, every response ends, and nothing is applied (the model's version does not move).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Socket as NetSocket } from 'node:net';
import { IncomingMessage, ServerResponse } from 'node:http';
import fc from 'fast-check';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startCoordinator, type Coordinator } from '../coordinator.ts';
import { loadMnist, sliceDataset } from '../data/dataset.ts';
import { initNodeBackend } from '../../shared/training/node-backend.ts';
import { attachWorkerHandlers, type FlockServer } from '../transport/socket-handlers.ts';
import { createHttpHandler } from '../http/http-server.ts';
import { PROTOCOL_VERSION } from '../../shared/protocol/messages.ts';
import { systemClock } from '../../shared/clock.ts';

const SCALE = Number(process.env.FUZZ_SCALE ?? 1);
const SOCKET_RUNS = Math.round(16_000 * SCALE); 
const HTTP_RUNS = Math.round(40_000 * SCALE);

let c: Coordinator;
let dataDir: string;
let unhandled = 0;
const onUnhandled = (): void => void unhandled++;

before(async () => {
  process.on('unhandledRejection', onUnhandled);
  await initNodeBackend('wasm');
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'flock-fuzz-'));
  c = await startCoordinator({
    port: 0, host: '127.0.0.1', dataDir, clientDir: path.join(dataDir, 'none'), demo: 'mnist-mlp', store: 'memory',
    demoOverrides: { batchSize: 64, stop: { maxEpochs: 1000, targetAccuracy: null }, evalEveryVersions: 1_000_000 },
    log: { info() {}, warn() {} }, dataset: sliceDataset(await loadMnist(), 640, 100),
  });
});

after(async () => {
  process.off('unhandledRejection', onUnhandled);
  await c.close();
  await rm(dataDir, { recursive: true, force: true });
});

// ---- generators ---------------------------------------------------------------------------------

const nasty = fc.oneof(
  fc.anything({ maxDepth: 3, maxKeys: 5, withBigInt: true, withMap: true, withSet: true, withTypedArray: true, withNullPrototype: true, withObjectString: true }),
  fc.constantFrom('__proto__', 'constructor', 'prototype', '', 'x'.repeat(10_000), -1, 1e300, NaN, Infinity, null, undefined, [], {}),
  fc.dictionary(fc.constantFrom('__proto__', 'constructor', 'toString', 'leaseId', 'jobId'), fc.anything({ maxDepth: 1 })),
);
const id = fc.oneof(fc.string({ maxLength: 140 }), fc.constantFrom('mnist-mlp', 'spot-1-1', 'spot-999999-0', 'w-00000000'), fc.uuid());
const count = fc.oneof(fc.nat(), fc.constantFrom(-1, 0.5, 1e300, Number.MAX_SAFE_INTEGER, NaN));
const caps = fc.record({
  backend: fc.constantFrom('wasm', 'webgpu', 'cpu', 'webgl', 'gpu9000'),
  runtime: fc.constantFrom('browser', 'node', 'toaster'),
  wasmThreads: fc.option(fc.boolean(), { nil: undefined }),
  userAgent: fc.option(fc.string({ maxLength: 600 }), { nil: undefined }),
}, { requiredKeys: ['backend', 'runtime'] });
const binary = fc.oneof(
  fc.uint8Array({ maxLength: 2048 }).map((u) => u),
  fc.nat({ max: 4096 }).map((n) => new ArrayBuffer(n)),
  fc.float32Array({ maxLength: 256 }).map((f) => new Uint8Array(f.buffer)),
);
const spec = fc.record({ name: fc.string({ maxLength: 20 }), shape: fc.array(fc.integer({ min: -1, max: 1 << 20 }), { maxLength: 9 }), dtype: fc.constantFrom('float32', 'int32', 'uint8', 'float64') });

const events = {
  'worker:hello': fc.oneof(nasty, fc.record({ protocol: fc.oneof(fc.constant(PROTOCOL_VERSION), fc.integer()), workerId: fc.option(id, { nil: undefined }), credential: fc.option(fc.oneof(fc.string({ maxLength: 200 }), fc.constant('v1.abc.' + 'A'.repeat(43))), { nil: undefined }), capabilities: caps })),
  'job:get': fc.oneof(nasty, fc.record({ jobId: fc.option(id, { nil: undefined }) })),
  'lease:request': fc.oneof(nasty, fc.record({ jobId: fc.option(id, { nil: undefined }), cachedVersion: fc.option(count, { nil: null }), movable: fc.option(fc.boolean(), { nil: undefined }) })),
  'gradient:push': fc.oneof(nasty, fc.record({ leaseId: id, baseVersion: count, numSamples: count, loss: fc.oneof(fc.double(), fc.constant(null)), computeMs: fc.double(), specs: fc.array(spec, { maxLength: 6 }), data: binary })),
  'lease:release': fc.oneof(nasty, fc.record({ leaseId: id })),
  'job:refuse': fc.oneof(nasty, fc.record({ jobId: id, reason: fc.string({ maxLength: 1200 }) })),
} as const;
type EventName = keyof typeof events;
const eventArb = fc.oneof(...(Object.keys(events) as EventName[]).map((name) => fc.tuple(fc.constant(name), events[name], fc.constantFrom('ack', 'ack', 'ack', 'none', 'not-a-function'))));

// ---- a fake socket.io server: the real handlers, called directly ---------------------------------

interface FakeSocket {
  id: string;
  data: Record<string, unknown>;
  handlers: Map<string, (raw: unknown, ack: unknown) => void>;
}

function fakeServer(): { io: FlockServer; connect(): FakeSocket } {
  const sockets = new Map<string, FakeSocket>();
  let onConnection: ((s: unknown) => void) | null = null;
  let n = 0;
  const room = { emit() {} };
  const io = {
    on(ev: string, fn: (s: unknown) => void) {
      if (ev === 'connection') onConnection = fn;
    },
    to: () => room,
    of: () => ({ sockets }),
  } as unknown as FlockServer;
  return {
    io,
    connect() {
      const s: FakeSocket & Record<string, unknown> = {
        id: `s${n++}`,
        data: { address: `10.1.${n & 255}.${(n >> 8) & 255}` },
        handlers: new Map(),
        on(ev: string, fn: (raw: unknown, ack: unknown) => void) { s.handlers.set(ev, fn); },
        join() {},
        leave() {},
      };
      sockets.set(s.id, s);
      onConnection!(s);
      return s;
    },
  };
}

test(`socket handlers: >= 100,000 generated events on every handler: no throw, at most one well-formed ack, nothing applied`, { timeout: 120_000 }, () => {
  const job = c.registry.all()[0]!;
  const v0 = job.currentVersion;
  const applied0 = job.summary().updates.applied;
  const { io, connect } = fakeServer();
  attachWorkerHandlers(io, c.registry, systemClock, { info() {}, warn() {} }, {}, c.state, {}, c.guard);
  let inputs = 0;
  const started = performance.now();
  fc.assert(
    fc.property(fc.array(eventArb, { minLength: 1, maxLength: 24 }), (seq) => {
      const s = connect();
      for (const [name, payload, ackKind] of seq) {
        inputs++;
        let calls = 0;
        let answer: unknown;
        const ack = ackKind === 'ack' ? (r: unknown) => { calls++; answer = r; } : ackKind === 'none' ? undefined : 42;
        s.handlers.get(name)!(payload, ack);
        if (ackKind !== 'ack') continue;
        assert.ok(calls <= 1, `${name} answered ${calls} times`);
        if (calls === 1) {
          const a = answer as { ok?: unknown; code?: unknown };
          assert.equal(typeof a.ok, 'boolean');
          if (a.ok === false) assert.equal(typeof a.code, 'string');
        }
      }
      s.handlers.get('disconnect')!(undefined, undefined);
    }),
    { numRuns: SOCKET_RUNS, seed: 11 },
  );
  const ms = performance.now() - started;
  console.log(`# socket handlers: ${inputs} generated events in ${(ms / 1000).toFixed(1)} s`);
  assert.ok(inputs >= Math.min(100_000, SOCKET_RUNS * 6), `${inputs} events`);
  assert.equal(job.currentVersion, v0, 'nothing applied');
  assert.equal(job.summary().updates.applied, applied0);
});

// ---- HTTP: the real handler with in-memory requests ---------------------------------------------

const segment = fc.oneof(fc.constantFrom('api', 'jobs', 'mnist-mlp', 'workers', 'session', 'demos', 'stats', 'pause', 'resume', 'settings', 'view', 'history.csv', 'history.json', 'metrics', 'checkpoints', 'model', 'model.json', 'weights-v0.bin', 'weights-best-v1.bin', 'data', 'health', 'wasm', 'tfjs-backend-wasm.wasm', 'admin', 'favicon.svg', '..', '%2e%2e', '%00', 'index.html'), fc.string({ maxLength: 30 }).map(encodeURIComponent));
const action = fc.constantFrom('pause', 'resume', 'settings', 'view', 'history.csv', 'history.json', 'metrics', 'checkpoints', 'model', 'data', 'cancel');
const structured = fc.tuple(fc.constantFrom('mnist-mlp', 'mnist-mlp', 'nope', '%00', '..'), fc.option(action, { nil: undefined }), fc.option(segment, { nil: undefined }))
  .map(([j, a, extra]) => ['api', 'jobs', j, ...(a ? [a] : []), ...(extra ? [extra] : [])]);
const urlArb = fc.tuple(fc.oneof(structured, structured, fc.array(segment, { minLength: 0, maxLength: 5 })), fc.option(fc.string({ maxLength: 40 }), { nil: undefined }), fc.nat(9))
  .map(([parts, q, k]) => `/${k < 7 && parts[0] !== 'api' ? 'api/' : ''}${parts.join('/')}${q !== undefined ? `?${encodeURIComponent(q)}&which=${encodeURIComponent(q.slice(0, 5))}&version=${q.length}` : ''}`);
const bodyArb = fc.oneof(fc.constant(''), fc.json({ maxDepth: 3 }), fc.string({ maxLength: 300 }), fc.uint8Array({ maxLength: 512 }).map((u) => Buffer.from(u).toString('latin1')), fc.constant('{"__proto__":{"polluted":1},"learningRate":0.01}'), fc.constant('{"maxStaleness":-5}'));
const httpArb = fc.record({
  method: fc.constantFrom('GET', 'GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH'),
  url: urlArb,
  auth: fc.constantFrom('none', 'wrong', 'valid', 'garbage'),
  contentType: fc.constantFrom(undefined, 'application/json', 'multipart/form-data; boundary=x', 'text/plain', 'multipart/form-data'),
  body: bodyArb,
});

async function request(handler: (req: IncomingMessage, res: ServerResponse) => void, r: { method: string; url: string; auth: string; contentType: string | undefined; body: string }, token: string): Promise<number> {
  const sock = new NetSocket();
  const req = new IncomingMessage(sock);
  req.method = r.method;
  req.url = r.url;
  const headers: Record<string, string> = { host: 'localhost' };
  if (r.auth === 'valid') headers.authorization = `Bearer ${token}`;
  else if (r.auth === 'wrong') headers.authorization = 'Bearer nope';
  else if (r.auth === 'garbage') headers.authorization = 'Basic \u0000\u00ff';
  if (r.contentType) headers['content-type'] = r.contentType;
  const body = Buffer.from(r.body, 'latin1');
  headers['content-length'] = String(body.byteLength);
  req.headers = headers;
  const res = new ServerResponse(req);
  const done = new Promise<void>((resolve) => {
    const end = res.end.bind(res);
    res.end = ((...args: unknown[]) => {
      resolve();
      return (end as (...a: unknown[]) => ServerResponse)(...args);
    }) as typeof res.end;
    res.destroy = ((() => {
      resolve();
      return res;
    }) as typeof res.destroy);
  });
  handler(req, res);
  if (body.byteLength > 0) req.push(body);
  req.push(null);
  const timeout = new Promise<'timeout'>((r2) => setTimeout(() => r2('timeout'), 5000).unref());
  const outcome = await Promise.race([done, timeout]);
  sock.destroy();
  assert.notEqual(outcome, 'timeout', `${r.method} ${r.url} never answered`);
  return res.statusCode;
}

test(`HTTP routes: ${HTTP_RUNS} generated requests (paths, methods, tokens, bodies): no 5xx, every response ends, nothing applied`, { timeout: 120_000 }, async () => {
  // The built pages when there are any (static serving is fuzzed too), else the 503 stand-in.
  const built = fileURLToPath(new URL('../../dist/client', import.meta.url));
  const handler = createHttpHandler({ registry: c.registry, adminToken: c.adminToken, clientDir: existsSync(built) ? built : path.join(dataDir, 'none'), workers: () => [], workerStats: c.workerStats });
  const job = c.registry.all()[0]!;
  const v0 = job.currentVersion;
  const jobs0 = c.registry.all().length;
  let n = 0;
  const started = performance.now();
  const statuses = new Map<number, number>();
  await fc.assert(
    fc.asyncProperty(httpArb, async (r) => {
      // A valid admin token may legitimately cancel the job or create one: fuzz those routes' bodies without the action.
      if (r.auth === 'valid' && (/\/(cancel|pause)\b/.test(r.url) || (r.method === 'POST' && /^\/api\/jobs\/?(\?|$)/.test(r.url)))) r = { ...r, auth: 'wrong' };
      n++;
      const status = await request(handler, r, c.adminToken);
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
      assert.ok(status < 500 || status === 503, `${r.method} ${r.url} -> ${status}`);
    }),
    { numRuns: HTTP_RUNS, seed: 12 },
  );
  console.log(`# HTTP: ${n} generated requests in ${((performance.now() - started) / 1000).toFixed(1)} s; statuses ${JSON.stringify(Object.fromEntries(statuses))}`);
  assert.equal(job.currentVersion, v0);
  assert.equal(c.registry.all().length, jobs0, 'no job created');
  assert.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype pollution');
  assert.equal(unhandled, 0, 'no unhandled rejection');
});
