// Admin-only HTTP endpoints (Bearer token checked by the caller): create a job from a source
// (built-in demo today; a job-file upload joins as another `source.kind`), change a running job's
// learning rate / staleness bound, list demos and workers, export the metric history (CSV, JSON).
// Validation at the boundary with zod; every answer comes from the registry or the stat books.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendError, sendJson, sendText } from './respond.ts';
import { z } from 'zod';
import { AGGREGATION_MODES, aggregationFor, aggregationOf } from '../aggregation/aggregation-config.ts';
import { COMBINE_RULES } from '../aggregation/robust.ts';
import { ErrorCode } from '../../shared/protocol/errors.ts';
import type { CreateJobRequest, DemoInfo, SettingsPatch } from '../../shared/protocol/admin.ts';
import { DEMOS, demoConfig, type DemoName } from '../jobs/demos.ts';
import type { JobConfig } from '../jobs/job-config.ts';
import type { JobRegistry } from '../jobs/registry.ts';
import type { JobRuntime } from '../jobs/job-runtime.ts';
import { jobView } from '../jobs/job-view.ts';
import { submitJob, SubmitError, type UploadDeps } from './job-upload.ts';
import type { TelemetryBook } from '../jobs/job-telemetry.ts';
import type { WorkerStatsBook } from '../jobs/worker-stats.ts';

export interface AdminApiDeps {
  readonly registry: JobRegistry;
  /** Job-file uploads (multipart) and paths on this disk; absent: only demos can be created. */
  readonly upload?: UploadDeps | undefined;
  readonly workerStats?: WorkerStatsBook | undefined;
  readonly telemetry?: TelemetryBook | undefined;
}

const MAX_BODY_BYTES = 1 << 20;
const learningRate = z.number().positive().max(10);
const maxStaleness = z.number().int().min(0).max(100_000);

const SettingsSchema = z.object({
  name: z.string().trim().min(1).max(200).optional(),
  description: z.string().max(2000).optional(),
  learningRate: learningRate.optional(),
  batchSize: z.number().int().min(1).max(65_536).optional(),
  maxStaleness: maxStaleness.optional(),
  maxEpochs: z.number().int().min(1).max(100_000).optional(),
  targetAccuracy: z.number().gt(0).max(1).nullable().optional(),
  aggregation: z
    .object({ mode: z.enum(AGGREGATION_MODES), rule: z.enum(COMBINE_RULES).optional(), bufferSize: z.number().int().min(1).max(256).optional(), localSteps: z.number().int().min(1).max(10_000).optional() })
    .strict()
    .optional(),
});

/** `source` is a discriminated union so a `{ kind: 'file', ... }` upload can be added beside it. */
export const CreateJobSchema = z.object({
  id: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'lowercase letters, digits and dashes').optional(),
  source: z.discriminatedUnion('kind', [z.object({ kind: z.literal('demo'), demo: z.enum(DEMOS) })]),
  settings: SettingsSchema.default({}),
}) satisfies z.ZodType<CreateJobRequest, unknown>;

export const SettingsPatchSchema = z
  .object({ learningRate: learningRate.optional(), maxStaleness: maxStaleness.optional(), weight: z.number().positive().max(1000).optional() })
  .refine((p) => p.learningRate !== undefined || p.maxStaleness !== undefined || p.weight !== undefined, 'nothing to change') satisfies z.ZodType<SettingsPatch, unknown>;

const DEMO_TITLES: Record<DemoName, string> = { 'mnist-mlp': 'MNIST MLP (784-128-10)', 'mnist-cnn': 'MNIST CNN (conv8-conv16-dense10)', 'mnist-mlp-large': 'MNIST MLP large (784-1024-256-10, 1.07M parameters)' };

export function demoInfos(): DemoInfo[] {
  return DEMOS.map((name) => {
    const c = demoConfig(name);
    const a = aggregationOf(c);
    return {
      name,
      title: DEMO_TITLES[name],
      description: c.description,
      settings: { learningRate: c.optimizer.learningRate, batchSize: c.batchSize, maxStaleness: c.staleness.maxStaleness, maxEpochs: c.stop.maxEpochs, targetAccuracy: c.stop.targetAccuracy },
      aggregation: { mode: a.mode, rule: a.rule, bufferSize: a.bufferSize, localSteps: aggregationFor({ mode: 'local' }).localSteps },
    };
  });
}

/** The job config a create request describes (throws on an unknown source). */
export function configFor(req: z.infer<typeof CreateJobSchema>): JobConfig {
  const base = demoConfig(req.source.demo);
  const s = req.settings;
  return {
    ...base,
    name: s.name ?? base.name,
    description: s.description ?? base.description,
    optimizer: { ...base.optimizer, learningRate: s.learningRate ?? base.optimizer.learningRate },
    batchSize: s.batchSize ?? base.batchSize,
    staleness: { ...base.staleness, maxStaleness: s.maxStaleness ?? base.staleness.maxStaleness },
    stop: { maxEpochs: s.maxEpochs ?? base.stop.maxEpochs, targetAccuracy: s.targetAccuracy === undefined ? base.stop.targetAccuracy : s.targetAccuracy },
    // A mode named without its options gets that mode's defaults (buffered: the robust default's).
    aggregation: s.aggregation ? aggregationFor(s.aggregation) : base.aggregation,
  };
}

function freeId(registry: JobRegistry, base: string): string {
  if (!registry.get(base)) return base;
  for (let n = 2; ; n++) if (!registry.get(`${base}-${n}`)) return `${base}-${n}`;
}

export async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.byteLength;
    if (size > MAX_BODY_BYTES) throw new BodyError(413, 'body too large');
    chunks.push(c);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
  } catch {
    throw new BodyError(400, 'body is not JSON');
  }
}

export class BodyError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function zodMessage(err: z.ZodError): string {
  const issue = err.issues[0];
  return (issue && issue.path.length > 0 ? issue.path.join('.') + ': ' : '') + (issue?.message ?? 'invalid');
}

/** RFC 4180 cell: quoted only when it holds a comma, quote or line break. */
function csvCell(v: unknown): string {
  if (v === null || v === undefined) return '';
  const t = String(v);
  return /[",\r\n]/.test(t) ? `"${t.replaceAll('"', '""')}"` : t;
}

/** Long-format CSV: one `series` column (evaluation, train_loss, telemetry) so each filters out. */
export function historyCsv(job: JobRuntime, telemetry: TelemetryBook | undefined): string {
  const cols = ['series', 'version', 'at_ms', 'at_iso', 'test_accuracy', 'test_loss', 'train_loss', 'samples_per_sec', 'workers', 'applied', 'refused'] as const;
  const lines = [cols.join(',')];
  const row = (r: Partial<Record<(typeof cols)[number], unknown>>): void => {
    lines.push(cols.map((c) => csvCell(r[c])).join(','));
  };
  const h = job.metricHistory();
  for (const e of h.evaluations) row({ series: 'evaluation', version: e.version, at_ms: e.at, at_iso: new Date(e.at).toISOString(), test_accuracy: e.testAccuracy, test_loss: e.testLoss });
  for (const l of h.trainLoss) row({ series: 'train_loss', version: l.version, train_loss: l.loss });
  for (const t of telemetry?.points(job.id) ?? []) {
    const refused = Object.values(t.refused).reduce((a, b) => a + b, 0);
    row({ series: 'telemetry', version: t.version, at_ms: t.at, at_iso: new Date(t.at).toISOString(), samples_per_sec: Math.round(t.samplesPerSec * 10) / 10, workers: t.workers, applied: t.applied, refused });
  }
  return lines.join('\n') + '\n';
}

/**
 * Handles an admin route; returns false when the path is not one. The caller has checked the
 * token. `parts` is the path split on '/', starting with 'api'.
 */
export async function handleAdminApi(req: IncomingMessage, res: ServerResponse, parts: readonly string[], deps: AdminApiDeps): Promise<boolean> {
  const method = req.method ?? 'GET';
  const reply = (status: number, body: unknown, headers?: Record<string, string>): void => sendJson(res, status, body, headers);
  const replyError = (status: number, code: string, message: string): void => sendError(res, status, code, message);
  const { registry } = deps;

  if (parts[1] === 'session' && parts.length === 2 && method === 'GET') {
    reply(200, { ok: true });
    return true;
  }
  if (parts[1] === 'demos' && parts.length === 2 && method === 'GET') {
    reply(200, demoInfos());
    return true;
  }
  if (parts[1] === 'workers' && parts[2] === 'stats' && parts.length === 3 && method === 'GET') {
    reply(200, deps.workerStats?.rows() ?? []);
    return true;
  }
  if (parts[1] !== 'jobs') return false;

  if (parts.length === 2 && method === 'POST') {
    const multipart = (req.headers['content-type'] ?? '').startsWith('multipart/form-data');
    const body = multipart ? null : await readJson(req);
    if (multipart || (body as { source?: { kind?: unknown } } | null)?.source?.kind === 'path') {
      if (!deps.upload) {
        replyError(400, ErrorCode.BadRequest, 'this coordinator takes no job files');
        return true;
      }
      try {
        reply(201, jobView(await submitJob(req, body, deps.upload)));
      } catch (err) {
        if (!(err instanceof SubmitError)) throw err;
        reply(err.status, { error: { code: err.code, message: err.message, field: err.field } });
      }
      return true;
    }
    const parsed = CreateJobSchema.safeParse(body);
    if (!parsed.success) {
      replyError(400, ErrorCode.BadRequest, zodMessage(parsed.error));
      return true;
    }
    const id = parsed.data.id ?? freeId(registry, parsed.data.source.demo);
    if (registry.get(id)) {
      replyError(409, ErrorCode.BadRequest, `job ${id} already exists`);
      return true;
    }
    let config: JobConfig;
    try {
      config = configFor(parsed.data);
    } catch (err) {
      replyError(400, ErrorCode.BadRequest, (err as Error).message);
      return true;
    }
    const job = await registry.create(id, config);
    reply(201, jobView(job));
    return true;
  }

  const job = parts[2] ? registry.get(parts[2]) : undefined;
  if (!job) return false;
  const rest = parts.slice(3);

  if (rest.length === 1 && rest[0] === 'settings' && method === 'POST') {
    const parsed = SettingsPatchSchema.safeParse(await readJson(req));
    if (!parsed.success) {
      replyError(400, ErrorCode.BadRequest, zodMessage(parsed.error));
      return true;
    }
    if (job.status === 'finished' || job.status === 'cancelled') {
      replyError(409, ErrorCode.JobFinished, `job is ${job.status}`);
      return true;
    }
    registry.updateSettings(job.id, parsed.data);
    // The new config is committed before the answer says it took effect.
    await registry.durable();
    reply(200, jobView(job));
    return true;
  }
  if (rest.length === 1 && rest[0] === 'view' && method === 'GET') {
    reply(200, jobView(job));
    return true;
  }
  if (rest.length === 1 && rest[0] === 'history.csv' && method === 'GET') {
    sendText(res, 200, historyCsv(job, deps.telemetry), 'text/csv; charset=utf-8', { 'Content-Disposition': `attachment; filename="${job.id}-history.csv"` });
    return true;
  }
  if (rest.length === 1 && rest[0] === 'history.json' && method === 'GET') {
    const h = job.metricHistory();
    reply(200, { job: jobView(job), evaluations: h.evaluations, trainLoss: h.trainLoss, staleness: job.stalenessHistogram(), telemetry: deps.telemetry?.points(job.id) ?? [] }, {
      'Content-Disposition': `attachment; filename="${job.id}-history.json"`,
    });
    return true;
  }
  return false;
}
