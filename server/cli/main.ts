// flockctl: the command line for users and scripts. Parses arguments (commander), turns each
// command into calls on a coordinator (api-client.ts) or a local process (serve, worker), and
// prints one clear line on any failure with a non-zero exit, never a stack trace.
//
//   flockctl serve | submit JOB.json | jobs [--json] | pause|resume|cancel ID
//           | export ID --out DIR | worker URL [--job ID] [--threads N]
// Target: FLOCK_URL (default http://127.0.0.1:8080) and FLOCK_ADMIN_TOKEN, or --url / --token.

import { Command, CommanderError, Option } from 'commander';
import { ApiClient, CliError, type Target } from './api-client.ts';
import { submitCommand } from './submit.ts';
import { exportCommand } from './export.ts';
import { workerCommand } from './worker.ts';
import { JobFileError } from '../jobs/job-file.ts';

const DEFAULT_URL = 'http://127.0.0.1:8080';
/** Set by `serve`: the coordinator keeps the process alive (its own signal handlers end it). */
let keepAlive = false;

function target(cmd: Command): Target {
  const o = cmd.optsWithGlobals<{ url?: string; token?: string }>();
  const url = o.url ?? process.env.FLOCK_URL ?? DEFAULT_URL;
  try {
    new URL(url);
  } catch {
    throw new CliError(`"${url}" is not a URL (FLOCK_URL or --url), e.g. ${DEFAULT_URL}.`);
  }
  return { url, token: o.token ?? (process.env.FLOCK_ADMIN_TOKEN || undefined) };
}

interface JobRow {
  id: string;
  name: string;
  status: string;
  epoch: number;
  maxEpochs: number;
  progress: number;
  workers: number;
  samplesPerSec: number;
  task?: string;
  metrics: { testAccuracy: number | null; testLoss: number | null; testMae?: number | null };
}

function metricText(j: JobRow): string {
  if (j.metrics.testAccuracy != null) return `acc ${(j.metrics.testAccuracy * 100).toFixed(2)}%`;
  if (j.metrics.testMae != null) return `MAE ${j.metrics.testMae.toPrecision(4)}`;
  if (j.metrics.testLoss != null) return `loss ${j.metrics.testLoss.toPrecision(4)}`;
  return '—';
}

/** A plain text table: columns padded to their widest cell. */
export function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd()).join('\n');
}

export function buildProgram(): Command {
  const program = new Command('flockctl')
    .description('Flock: train your model on volunteers\' browsers. Target: FLOCK_URL and FLOCK_ADMIN_TOKEN, or --url and --token.')
    .option('--url <url>', `coordinator URL (default: FLOCK_URL or ${DEFAULT_URL})`)
    .option('--token <token>', 'admin token (default: FLOCK_ADMIN_TOKEN)')
    .showHelpAfterError('(run flockctl --help for usage)')
    .exitOverride();

  program
    .command('serve')
    .description('start a coordinator (what `npm start` runs); settings from the environment (README)')
    .action(async () => {
      const { serve } = await import('../main.ts');
      keepAlive = true;
      await serve(process.env);
    });

  program
    .command('submit')
    .description('validate a job file and everything it names locally, upload it, and print the new job id on the last line')
    .argument('<job-file>', 'the job file (JSON)')
    .option('--on-server', 'the path is on the coordinator\'s own disk: send the path, not the files (big data)')
    .option('--no-validate', 'skip the local validation (the coordinator validates anyway)')
    .action(async (file: string, o: { onServer?: boolean; validate: boolean }, cmd: Command) => {
      const id = await submitCommand(new ApiClient(target(cmd)), file, { onServer: o.onServer === true, validate: o.validate });
      console.log(id);
    });

  program
    .command('jobs')
    .description('list the jobs')
    .option('--json', 'print what GET /api/jobs returns')
    .action(async (o: { json?: boolean }, cmd: Command) => {
      const jobs = await new ApiClient(target(cmd)).json<JobRow[]>('GET', 'api/jobs');
      if (o.json) {
        console.log(JSON.stringify(jobs, null, 2));
        return;
      }
      if (jobs.length === 0) {
        console.log('no jobs');
        return;
      }
      const rows = [['ID', 'NAME', 'STATUS', 'EPOCH', 'PROGRESS', 'METRIC', 'WORKERS', 'SAMPLES/S']];
      for (const j of jobs) {
        rows.push([j.id, j.name.slice(0, 32), j.status, `${j.epoch}/${j.maxEpochs}`, `${Math.round(j.progress * 100)}%`, metricText(j), String(j.workers), j.workers > 0 ? String(Math.round(j.samplesPerSec)) : '—']);
      }
      console.log(table(rows));
    });

  for (const [action, done, status] of [['pause', 'paused', 'paused'], ['resume', 'resumed', 'running'], ['cancel', 'cancelled', 'cancelled']] as const) {
    program
      .command(action)
      .description(`${action} a job`)
      .argument('<job-id>')
      .action(async (id: string, _o: unknown, cmd: Command) => {
        const job = await new ApiClient(target(cmd)).json<{ status: string }>('POST', `api/jobs/${encodeURIComponent(id)}/${action}`, true);
        console.log(`job ${id} ${job.status === status ? done : `is ${job.status}`}`);
      });
  }

  program
    .command('export')
    .description('write the trained model (model.json + weights, loads with tf.loadLayersModel), its metric history (CSV) and the preprocessing it needs')
    .argument('<job-id>')
    .requiredOption('--out <dir>', 'folder to write into (created if missing)')
    .option('--version <n>', 'a kept checkpoint version instead of the newest')
    .action(async (id: string, o: { out: string; version?: string }, cmd: Command) => {
      await exportCommand(new ApiClient(target(cmd)), id, o.out, o.version);
    });

  program
    .command('worker')
    .description('contribute this machine: a headless worker on tfjs WASM (same loop as a browser tab); Ctrl-C hands back its lease and exits')
    .argument('[url]', 'coordinator URL (default: FLOCK_URL or --url)')
    .option('--job <id>', 'work on this job only (default: whichever the coordinator assigns)')
    .addOption(new Option('--threads <n>', 'parallel worker loops, one per core').default('1'))
    .action(async (url: string | undefined, o: { job?: string; threads: string }, cmd: Command) => {
      const threads = Number(o.threads);
      if (!Number.isInteger(threads) || threads < 1 || threads > 256) throw new CliError(`--threads must be an integer from 1 to 256; got ${o.threads}.`);
      await workerCommand({ url: url ?? target(cmd).url, jobId: o.job, threads });
    });

  return program;
}

export async function run(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv as string[]);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    if (err instanceof CliError || err instanceof JobFileError) {
      console.error(`flockctl: ${err.message}`);
      return 1;
    }
    console.error(`flockctl: unexpected error: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
    return 1;
  }
}

const code = await run(process.argv);
if (code !== 0 || !keepAlive) process.exit(code);
