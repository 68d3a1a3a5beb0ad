// POST /api/jobs with a job file: either multipart (field `job` = the job file's JSON, then one
// file part per file it names, the part's field name being its path relative to the job file) or
// JSON `{ "source": { "kind": "path", "jobFile": "/abs/job.json" } }` for data already on the
// coordinator's disk. Everything lands in a staging folder under the data dir, goes through the
// same validation (server/jobs/submission.ts), and becomes a job, or is removed: nothing half-made.

import type { IncomingMessage } from 'node:http';
import { createWriteStream } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import busboy from 'busboy';
import type { JobRegistry } from '../jobs/registry.ts';
import type { JobRuntime } from '../jobs/job-runtime.ts';
import { prepareJob, type SubmitLimits } from '../jobs/submission.ts';
import { JobFileError } from '../jobs/job-file.ts';

export interface UploadDeps {
  readonly registry: JobRegistry;
  readonly dataDir: string;
  readonly limits: SubmitLimits;
}

/** A refusal for the client: HTTP status, code, one-sentence message, and the job-file key at fault. */
export class SubmitError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field: string | null = null,
  ) {
    super(message);
  }
}

/** A relative path inside the staging folder, or null when it would escape it. */
export function safeRelative(p: string): string | null {
  const norm = path.posix.normalize(p.replaceAll('\\', '/'));
  if (norm.startsWith('/') || norm === '..' || norm.startsWith('../') || norm === '.' || norm.includes('\0') || /^[a-zA-Z]:/.test(norm)) return null;
  return norm;
}

/** Job id from its name: lowercase words joined by dashes, unique in the registry. */
export function jobIdFor(registry: JobRegistry, name: string): string {
  const base = name.toLowerCase().normalize('NFKD').replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40).replace(/-+$/, '') || 'job';
  if (!registry.has(base)) return base;
  for (let n = 2; ; n++) if (!registry.has(`${base}-${n}`)) return `${base}-${n}`;
}

async function receiveMultipart(req: IncomingMessage, dir: string, maxBytes: number): Promise<void> {
  let total = 0;
  let sawJob = false;
  const writes: Promise<void>[] = [];
  await new Promise<void>((resolve, reject) => {
    let failed = false;
    const fail = (e: Error): void => {
      if (failed) return;
      failed = true;
      req.unpipe();
      req.resume();
      reject(e);
    };
    let bb: busboy.Busboy;
    try {
      bb = busboy({ headers: req.headers, limits: { fieldSize: 1 << 20, fields: 4, files: 100_000 } });
    } catch (err) {
      return reject(new SubmitError(400, 'BAD_REQUEST', `not a multipart upload: ${(err as Error).message}`));
    }
    bb.on('field', (name, value) => {
      if (name !== 'job') return;
      sawJob = true;
      writes.push(writeFile(path.join(dir, 'files', 'job.json'), value));
    });
    bb.on('file', (name, stream) => {
      const rel = safeRelative(name);
      if (!rel || rel === 'job.json') {
        stream.resume();
        return fail(new SubmitError(400, 'BAD_REQUEST', `file part "${name}" has a path outside the job's folder`));
      }
      const target = path.join(dir, 'files', rel);
      // Counted as it is written (a 'data' listener here would start the flow before the pipe is attached).
      const count = new Transform({
        transform(chunk: Buffer, _enc, done) {
          total += chunk.byteLength;
          if (total > maxBytes) {
            fail(new SubmitError(413, 'TOO_LARGE', `the upload is over the limit of ${Math.round(maxBytes / 2 ** 20)} MiB (FLOCK_MAX_DATASET_BYTES / FLOCK_MAX_MODEL_BYTES); put big data on the coordinator's disk and submit its path`));
            return done(new Error('upload too large'));
          }
          done(null, chunk);
        },
      });
      writes.push(mkdir(path.dirname(target), { recursive: true }).then(() => pipeline(stream, count, createWriteStream(target))));
    });
    bb.on('error', (e: Error) => fail(new SubmitError(400, 'BAD_REQUEST', `upload broken: ${e.message}`)));
    bb.on('close', () => {
      if (!failed) resolve();
    });
    req.pipe(bb);
  });
  await Promise.all(writes);
  if (!sawJob) throw new SubmitError(400, 'BAD_REQUEST', 'the upload has no "job" field (the job file)');
}

/**
 * Creates a job from a job file upload or a path on the coordinator's disk. Throws SubmitError
 * (with the job-file key at fault when there is one); the staging folder is always removed.
 */
export async function submitJob(req: IncomingMessage, body: unknown | null, deps: UploadDeps): Promise<JobRuntime> {
  const staging = path.join(deps.dataDir, 'staging', `${Date.now()}-${randomBytes(6).toString('hex')}`);
  await mkdir(staging, { recursive: true });
  try {
    let jobFile: string;
    if (body === null) {
      await mkdir(path.join(staging, 'files'), { recursive: true });
      await receiveMultipart(req, staging, deps.limits.maxDatasetBytes + deps.limits.maxModelBytes);
      // The job file sits beside its files so its relative paths resolve inside the staging folder.
      jobFile = path.join(staging, 'files', 'job.json');
    } else {
      const src = (body as { source?: { jobFile?: unknown } }).source;
      if (typeof src?.jobFile !== 'string' || !path.isAbsolute(src.jobFile)) throw new SubmitError(400, 'BAD_REQUEST', 'source.jobFile must be an absolute path on the coordinator');
      jobFile = src.jobFile;
    }
    const prepared = await prepareJob(jobFile, path.join(staging, 'work'), deps.limits);
    const id = jobIdFor(deps.registry, prepared.job.name);
    return await deps.registry.create(id, prepared.config, { dataDir: prepared.dataDir, ...(prepared.initialWeights ? { initialWeights: prepared.initialWeights } : {}) });
  } catch (err) {
    if (err instanceof JobFileError) throw new SubmitError(400, 'BAD_JOB_FILE', err.message, err.field);
    throw err;
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}
