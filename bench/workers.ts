// Contributor benchmark (not a timed test): samples/s of a `flockctl worker` process against a
// volunteer browser tab on WASM, on the same model, measured one after the other in one run on a
// fresh coordinator (applied samples counted by the coordinator over a fixed window after warm-up).
// Models: the built-in MNIST MLP and CNN demos (`--demos` picks).
// Usage: npm run bench:workers [-- --seconds 20 --demos mnist-mlp,mnist-cnn]

import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchBrowser } from '../e2e/browser.ts';
import { startCoordinatorProcess, type CoordinatorProcess } from '../e2e/coordinator-process.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const arg = (name: string): string | undefined => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const SECONDS = Number(arg('seconds') ?? 20);
const WARMUP_S = 6;
const DEMOS = (arg('demos') ?? 'mnist-mlp,mnist-cnn').split(',');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface JobJson {
  id: string;
  samplesApplied: number;
  workers: number;
}

async function samplesApplied(c: CoordinatorProcess, id: string): Promise<number> {
  const jobs = (await (await fetch(`${c.url}/api/jobs`)).json()) as JobJson[];
  return jobs.find((j) => j.id === id)?.samplesApplied ?? 0;
}

/** Applied samples/s over SECONDS after a warm-up (model build, probe, first weights). */
async function measure(c: CoordinatorProcess, job: string): Promise<number> {
  await sleep(WARMUP_S * 1000);
  const s0 = await samplesApplied(c, job);
  const t0 = Date.now();
  await sleep(SECONDS * 1000);
  const s1 = await samplesApplied(c, job);
  return ((s1 - s0) * 1000) / (Date.now() - t0);
}

interface Row {
  demo: string;
  contributor: 'flockctl worker (Node, tfjs WASM)' | 'browser tab (WASM)';
  samplesPerSec: number;
}

const rows: Row[] = [];
const browser = await launchBrowser();
for (const demo of DEMOS) {
  const dir = mkdtempSync(path.join(tmpdir(), 'flock-bench-workers-'));
  const coord = await startCoordinatorProcess({ FLOCK_DATA_DIR: dir, FLOCK_DEMO: demo, FLOCK_MAX_EPOCHS: '1000', FLOCK_ADMIN_TOKEN: 'bench-token' });
  try {
    const w = spawn(process.execPath, [path.join(root, 'server/cli/flockctl.js'), 'worker', coord.url, '--job', demo], { cwd: root, stdio: 'ignore' });
    const cli = await measure(coord, demo);
    w.kill('SIGINT');
    await new Promise((r) => w.once('exit', r));
    rows.push({ demo, contributor: 'flockctl worker (Node, tfjs WASM)', samplesPerSec: cli });

    const page = await browser.newPage();
    await page.goto(`${coord.url}/?job=${demo}&autostart=1&backend=wasm`);
    const tab = await measure(coord, demo);
    await page.close();
    rows.push({ demo, contributor: 'browser tab (WASM)', samplesPerSec: tab });
    console.log(`${demo}: flockctl worker ${Math.round(cli)} samples/s, browser tab ${Math.round(tab)} samples/s (worker/tab ${(cli / tab).toFixed(2)})`);
  } finally {
    await coord.stop('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}
await browser.close();

const out = path.join(root, 'bench', 'results');
mkdirSync(out, { recursive: true });
writeFileSync(
  path.join(out, 'workers.json'),
  JSON.stringify({ at: new Date().toISOString(), machine: { cpus: cpus().length, model: cpus()[0]?.model ?? '' }, windowS: SECONDS, warmupS: WARMUP_S, rows }, null, 2) + '\n',
);
console.log('\n| model | contributor | samples/s |\n|---|---|---|');
for (const r of rows) console.log(`| ${r.demo} | ${r.contributor} | ${Math.round(r.samplesPerSec).toLocaleString('en-US')} |`);
