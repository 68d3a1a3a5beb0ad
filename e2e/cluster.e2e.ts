// Journey: two coordinator processes on one Redis (FLOCK_STORE=redis). A Node worker trains through
// the owner, a real browser tab through the other process (its requests relayed to the owner over
// Redis); both are acknowledged, the dashboard's /admin feed works through the non-owner, the job's version (read through the non-owner's /api, passed to
// the owner) moves, the owner's evaluation reaches the tab (job:update over the Redis adapter), and every acknowledged update is in the Redis log exactly once.

import { test, expect } from '@playwright/test';
import { initNodeBackend } from '../shared/training/node-backend.ts';
import { redisMissing, startRedis } from '../server/storage/testing/redis-server.ts';
import { ADMIN_TOKEN, auditLog, clusterEnv, sleep, startProcess, startWorkers } from '../server/cluster/testing/cluster-fixture.ts';
import { io } from 'socket.io-client';

const ART = 'e2e/artifacts';

test('a browser tab on a non-owner process trains the job owned by another process', async ({ page }) => {
  test.skip(redisMissing() !== false, String(redisMissing()));
  await initNodeBackend('wasm');
  const redis = await startRedis();
  const env = clusterEnv(redis, { FLOCK_LEADER_TTL_MS: '3000' });
  const procs = [await startProcess(env), await startProcess(env)];
  try {
    // Wait for the election, then put the tab on the process that does not own the job.
    let owner = -1;
    for (let i = 0; i < 100 && owner < 0; i++) {
      owner = procs.findIndex((p) => p.logs.some((l) => l.includes('serves the jobs')));
      if (owner < 0) await sleep(100);
    }
    expect(owner).toBeGreaterThanOrEqual(0);
    const other = procs[1 - owner]!;
    const workers = startWorkers([procs[owner]!.url], 1);
    await page.goto(`${other.url}/?autostart=1&backend=wasm`);
    await expect.poll(async () => page.evaluate(() => (window as unknown as { flock: { stats: { accepted: number } | null } }).flock.stats?.accepted ?? 0), { timeout: 90_000 }).toBeGreaterThanOrEqual(10);
    // The owner's evaluation reaches the tab as a job:update through socket.io's Redis adapter.
    await expect.poll(async () => page.locator('#accuracy').textContent(), { timeout: 90_000 }).toMatch(/%/);
    await page.screenshot({ path: `${ART}/cluster-tab-on-non-owner.png`, fullPage: true });
    const job = (await (await fetch(`${other.url}/api/jobs/mnist-mlp`)).json()) as { version: number; workers: number };
    expect(job.version).toBeGreaterThan(10);
    // The dashboard's live feed through the non-owner: overview on connect, snapshot on watch, deltas.
    const admin = io(`${other.url}/admin`, { transports: ['websocket'], auth: { token: ADMIN_TOKEN } });
    const overview = await new Promise<{ jobs: { id: string }[] }>((resolve) => admin.once('jobs:overview', resolve));
    expect(overview.jobs.map((j) => j.id)).toEqual(['mnist-mlp']);
    const watch = (await admin.timeout(5000).emitWithAck('job:watch', { jobId: 'mnist-mlp' })) as { ok: boolean; snapshot?: { job: { version: number } } };
    expect(watch.ok).toBe(true);
    const delta = await new Promise<{ jobId: string }>((resolve) => admin.once('job:delta', resolve));
    expect(delta.jobId).toBe('mnist-mlp');
    admin.close();
    const refused = io(`${other.url}/admin`, { transports: ['websocket'], auth: { token: 'wrong' } });
    const err = await new Promise<Error>((resolve) => refused.once('connect_error', resolve));
    expect(err.message).toBe('UNAUTHORIZED');
    refused.close();
    await workers.stop();
    await page.close();
    await sleep(500);
    const audit = await auditLog(redis.url, 'mnist-mlp', workers.acked);
    expect(audit.lost).toBe(0);
    expect(audit.doubledLeases).toBe(0);
    expect(audit.doubledShards).toBe(0);
    expect(audit.contiguous).toBe(true);
  } finally {
    for (const p of procs) await p.stop('SIGTERM');
    await redis.stop();
  }
});
