// `flockctl worker URL`: a headless contributor (lab server, CI runner, cluster node) running the
// same WorkerLoop as a browser tab on tfjs WASM. `--threads N` runs N loops in N worker threads
// (one core each: tfjs-wasm computes on one thread). Shows progress on one status line;
// SIGINT/SIGTERM hand back the leases in hand and exit.

import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { startNodeWorker } from '../../shared/training/node-worker.ts';
import type { WorkerStats, WorkerState } from '../../shared/training/worker-loop.ts';

interface ThreadReport {
  readonly index: number;
  readonly state: WorkerState;
  readonly detail: string | undefined;
  readonly job: string | null;
  readonly stats: Pick<WorkerStats, 'samplesDone' | 'accepted' | 'refused' | 'samplesPerSec'> | null;
}

interface Options {
  readonly url: string;
  readonly jobId: string | undefined;
  readonly threads: number;
}

/** One loop; reports through `report` (the console, or the parent thread). Resolves when stopped. */
async function runLoop(opts: Options, index: number, report: (r: ThreadReport) => void, stopSignal: Promise<void>): Promise<void> {
  let job: string | null = null;
  let state: WorkerState = 'connecting';
  let detail: string | undefined;
  let stats: ThreadReport['stats'] = null;
  const send = (): void => report({ index, state, detail, job, stats });
  const w = await startNodeWorker(opts.url, {
    ...(opts.jobId ? { jobId: opts.jobId } : {}),
    listener: {
      state: (s, d) => {
        state = s;
        detail = d;
        send();
      },
      job: (j) => {
        job = j.name;
        send();
      },
      stats: (s) => {
        stats = { samplesDone: s.samplesDone, accepted: s.accepted, refused: s.refused, samplesPerSec: s.samplesPerSec };
        send();
      },
    },
  });
  await Promise.race([w.done, stopSignal]);
  await w.stop();
}

function statusText(reports: Map<number, ThreadReport>): string {
  const all = [...reports.values()];
  const samples = all.reduce((n, r) => n + (r.stats?.samplesDone ?? 0), 0);
  const accepted = all.reduce((n, r) => n + (r.stats?.accepted ?? 0), 0);
  const refused = all.reduce((n, r) => n + (r.stats?.refused ?? 0), 0);
  const rate = all.reduce((n, r) => n + (r.stats?.samplesPerSec ?? 0), 0);
  const jobs = [...new Set(all.map((r) => r.job).filter((j): j is string => j !== null))].join(', ') || '—';
  const states = [...new Set(all.map((r) => r.state + (r.detail && r.state !== 'computing' && r.state !== 'uploading' ? ` (${r.detail})` : '')))].join(', ');
  return `job: ${jobs} | ${states} | ${Math.round(rate).toLocaleString('en-US')} samples/s | ${samples.toLocaleString('en-US')} samples, ${accepted} gradients accepted, ${refused} refused`;
}

export async function workerCommand(opts: Options): Promise<void> {
  const reports = new Map<number, ThreadReport>();
  const tty = process.stderr.isTTY === true;
  let lastPrinted = 0;
  const print = (force = false): void => {
    const text = statusText(reports);
    if (tty) process.stderr.write(`\r\x1b[K${text.slice(0, (process.stderr.columns || 120) - 1)}`);
    else if (force || Date.now() - lastPrinted >= 5000) {
      process.stderr.write(text + '\n');
      lastPrinted = Date.now();
    }
  };
  const onReport = (r: ThreadReport): void => {
    reports.set(r.index, r);
    print(r.state === 'finished' || r.state === 'unsupported');
  };
  let stop!: () => void;
  const stopSignal = new Promise<void>((r) => (stop = r));
  let stopping = false;
  const onSignal = (sig: string): void => {
    if (stopping) return;
    stopping = true;
    if (tty) process.stderr.write('\n');
    process.stderr.write(`${sig}: handing back the lease${opts.threads > 1 ? 's' : ''} in hand and stopping\n`);
    stop();
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.stderr.write(`contributing to ${opts.url}${opts.jobId ? ` (job ${opts.jobId})` : ''} with ${opts.threads} worker loop${opts.threads > 1 ? 's' : ''} on tfjs WASM; Ctrl-C to stop\n`);

  if (opts.threads === 1) {
    await runLoop(opts, 0, onReport, stopSignal);
  } else {
    const threads = Array.from({ length: opts.threads }, (_, index) => {
      const t = new Worker(fileURLToPath(new URL('./worker-thread.js', import.meta.url)), { workerData: { opts, index } });
      t.on('message', (m: ThreadReport) => onReport(m));
      return new Promise<void>((resolve) => {
        t.once('exit', () => resolve());
        t.once('error', (err) => {
          process.stderr.write(`worker loop ${index} failed: ${err.message.split('\n')[0]}\n`);
        });
        void stopSignal.then(() => t.postMessage('stop'));
      });
    });
    await Promise.all(threads);
  }
  print(true);
  if (tty) process.stderr.write('\n');
  const finished = reports.size > 0 && [...reports.values()].every((r) => r.state === 'finished');
  process.stderr.write(stopping ? 'stopped\n' : finished ? 'the job is finished; thank you\n' : 'stopped\n');
}

// Inside a worker thread: one loop, reporting to the parent, stopping when told.
if (!isMainThread && parentPort && (workerData as { opts?: Options } | null)?.opts) {
  const { opts, index } = workerData as { opts: Options; index: number };
  const port = parentPort;
  const stopSignal = new Promise<void>((r) => port.once('message', () => r()));
  await runLoop(opts, index, (r) => port.postMessage(r), stopSignal);
  process.exit(0);
}
