// `flockctl submit JOB.json`: validates the job file and everything it names exactly as the
// coordinator will (server/jobs/submission.ts, in a temp folder removed afterwards), then uploads
// the job file and its files as one multipart request with a progress bar, and returns the job id.

import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { openAsBlob } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import cliProgress from 'cli-progress';
import { CliError, type ApiClient } from './api-client.ts';
import { JobFileError, manifestPaths, parseJobFile, referencedPaths } from '../jobs/job-file.ts';
import { prepareJob } from '../jobs/submission.ts';
import { initNodeBackend } from '../../shared/training/node-backend.ts';

/** Every file under `rel` (a file, or a folder walked recursively), as paths relative to `base`. */
async function expand(base: string, rel: string): Promise<string[]> {
  const abs = path.resolve(base, rel);
  let st;
  try {
    st = await stat(abs);
  } catch {
    throw new JobFileError(`${rel} (named in the job file) does not exist.`);
  }
  if (!st.isDirectory()) return [rel];
  const out: string[] = [];
  for (const e of await readdir(abs, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(path.relative(base, path.join(e.parentPath, e.name)));
  }
  return out.sort();
}

/** Rewrites a status line in place on a terminal (progress); silent otherwise, so logs stay one line per outcome. */
function statusLine(): { show(text: string): void; done(): void } {
  let shown = false;
  const tty = process.stderr.isTTY === true;
  return {
    show(text) {
      if (!tty) return;
      process.stderr.write(`\r\x1b[K${text}`);
      shown = true;
    },
    done() {
      if (shown) process.stderr.write('\r\x1b[K');
    },
  };
}

export async function submitCommand(api: ApiClient, file: string, opts: { onServer: boolean; validate: boolean }): Promise<string> {
  if (opts.onServer) {
    if (!path.isAbsolute(file)) throw new CliError(`with --on-server give the job file's absolute path on the coordinator; got ${file}.`);
    process.stderr.write('submitting (the coordinator reads and converts the data; this can take a while)...\n');
    const job = await api.json<{ id: string }>('POST', 'api/jobs', true, { source: { kind: 'path', jobFile: file } });
    return job.id;
  }
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new CliError(`cannot read the job file ${file}.`);
  }
  const job = parseJobFile(text, path.basename(file));
  const base = path.dirname(path.resolve(file));

  // Reachable, and the token is good, before spending time on validation.
  await api.json('GET', 'api/session', true);
  if (opts.validate) {
    const line = statusLine();
    const tmp = await mkdtemp(path.join(tmpdir(), 'flockctl-'));
    try {
      await initNodeBackend('wasm');
      line.show('validating: loading the model');
      const p = await prepareJob(path.resolve(file), tmp, undefined, (p) => line.show(`validating: ${p.phase} ${p.rows.toLocaleString('en-US')} rows`));
      line.done();
      const c = p.meta.counts;
      process.stderr.write(`validated: ${c.train.toLocaleString('en-US')} training and ${c.test.toLocaleString('en-US')} test examples, ${p.meta.featureNames.length} features, model of ${p.model.params.toLocaleString('en-US')} parameters\n`);
    } finally {
      line.done();
      await rm(tmp, { recursive: true, force: true });
    }
  }

  let modelJson: unknown;
  try {
    modelJson = JSON.parse(await readFile(path.resolve(base, job.model), 'utf8'));
  } catch {
    throw new JobFileError(`model file ${job.model} cannot be read as JSON.`);
  }
  const files = (await Promise.all(referencedPaths(job, manifestPaths(modelJson)).map((p) => expand(base, p)))).flat();
  const form = new FormData();
  form.append('job', text);
  let total = 0;
  for (const rel of files) {
    const abs = path.resolve(base, rel);
    total += (await stat(abs)).size;
    form.append(rel.split(path.sep).join('/'), await openAsBlob(abs), path.basename(rel));
  }
  // Encode the form once as a stream and count bytes as fetch pulls them: the progress bar.
  const encoded = new Response(form);
  const contentType = encoded.headers.get('content-type')!;
  const bar = new cliProgress.SingleBar({ format: 'uploading [{bar}] {percentage}% | {value}/{total} MiB', stream: process.stderr, hideCursor: true, noTTYOutput: false, etaBuffer: 20 }, cliProgress.Presets.shades_classic);
  const mib = (n: number): number => Math.round((n / 2 ** 20) * 10) / 10;
  bar.start(mib(total), 0);
  let sent = 0;
  const counted = encoded.body!.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, ctl) {
        sent += chunk.byteLength;
        bar.update(Math.min(mib(total), mib(sent)));
        ctl.enqueue(chunk);
      },
    }),
  );
  process.stderr.write('');
  try {
    const res = await api.request('POST', 'api/jobs', { admin: true, body: counted, headers: { 'Content-Type': contentType } });
    bar.update(mib(total));
    bar.stop();
    const created = (await res.json()) as { id: string; name: string };
    process.stderr.write(`created job ${created.id} (${created.name}); volunteers: ${new URL(`/?job=${encodeURIComponent(created.id)}`, api.target.url).href}\n`);
    return created.id;
  } catch (err) {
    bar.stop();
    throw err;
  }
}
