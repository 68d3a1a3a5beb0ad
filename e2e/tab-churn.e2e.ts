// Journey: volunteers come and go. One tab is closed mid-lease and another is reloaded; training
// goes on, and the API's worker count is right within one lease deadline.

import { test, expect } from '@playwright/test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startCoordinatorProcess } from './coordinator-process.ts';

interface JobJson {
  version: number;
  workers: number;
  status: string;
}
const DEADLINE_MS = 5000;

test('closing and reloading tabs: training continues, worker count right within one deadline', async ({ browser }) => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'flock-e2e-churn-'));
  const coord = await startCoordinatorProcess({ FLOCK_DATA_DIR: dataDir, FLOCK_DEMO: 'mnist-mlp', FLOCK_LEASE_TIMEOUT_MS: String(DEADLINE_MS) });
  const job = async (): Promise<JobJson> => ((await (await fetch(`${coord.url}/api/jobs`)).json()) as JobJson[])[0]!;
  try {
    const ctx = await browser.newContext();
    const a = await ctx.newPage();
    const b = await ctx.newPage();
    await a.goto(`${coord.url}/?autostart=1&backend=wasm`);
    await b.goto(`${coord.url}/?autostart=1&backend=wasm`);
    await expect.poll(async () => (await job()).workers, { timeout: 60_000 }).toBe(2);
    await expect.poll(async () => (await job()).version, { timeout: 60_000 }).toBeGreaterThan(20);

    // Close tab A while it trains (it holds a lease nearly all the time).
    const closedAt = Date.now();
    await a.close();
    await expect.poll(async () => (await job()).workers, { timeout: DEADLINE_MS, intervals: [100] }).toBe(1);
    const noticed = Date.now() - closedAt;
    const v1 = (await job()).version;
    await expect.poll(async () => (await job()).version, { timeout: 30_000 }).toBeGreaterThan(v1 + 10);

    // Reload tab B: its old connection goes, the new one joins, training continues.
    await b.reload();
    await expect.poll(async () => (await job()).workers, { timeout: DEADLINE_MS, intervals: [100] }).toBe(1);
    const v2 = (await job()).version;
    await expect.poll(async () => (await job()).version, { timeout: 60_000 }).toBeGreaterThan(v2 + 10);
    expect((await job()).status).toBe('running');
    console.log(`tab churn: closed tab noticed after ${noticed} ms (deadline ${DEADLINE_MS} ms)`);
    await ctx.close();
  } finally {
    await coord.stop('SIGTERM');
    rmSync(dataDir, { recursive: true, force: true });
  }
});
