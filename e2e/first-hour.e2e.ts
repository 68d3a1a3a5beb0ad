// Journey: what a new user trips over in the first hour. The dashboard of a job nobody works on
// shows no rate or ETA and empty-chart sentences instead of empty charts; `?job=nope` says the job
// does not exist and offers the running one (nothing starts, even with autostart); a volunteer
// trains a one-epoch job to the end; that job's link then says it is finished with its final
// accuracy and offers no Contribute; a cancelled job likewise; the dashboard shows the finished job
// with every shard done, the best checkpoint and a volunteer link. No page asks for anything that
// 404s (favicon).

import { test, expect, type Page } from '@playwright/test';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startCoordinatorProcess, type CoordinatorProcess } from './coordinator-process.ts';

const TOKEN = 'e2e-first-hour-token';
const ART = 'e2e/artifacts';
const flock = (p: Page): Promise<{ started: boolean; state: string; jobProblem: string | null }> => p.evaluate(() => (window as unknown as { flock: { started: boolean; state: string; jobProblem: string | null } }).flock);

test('first hour: idle dashboard, unknown job, finished job, cancelled job, best checkpoint', async ({ browser }) => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'flock-first-hour-'));
  mkdirSync(ART, { recursive: true });
  const coord: CoordinatorProcess = await startCoordinatorProcess({ FLOCK_DATA_DIR: dataDir, FLOCK_ADMIN_TOKEN: TOKEN, FLOCK_DEMO: 'mnist-mlp', FLOCK_DRAIN_MS: '300' });
  const notFound: string[] = [];
  try {
    const url = coord.url;
    const api = async (p: string, body?: unknown): Promise<Response> =>
      fetch(`${url}${p}`, { method: body === undefined ? 'POST' : 'POST', headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' }, body: JSON.stringify(body ?? {}) });
    // One epoch of 5 big shards: a tab finishes it in well under a minute.
    expect((await api('/api/jobs', { id: 'quick', source: { kind: 'demo', demo: 'mnist-mlp' }, settings: { name: 'Quick MLP', batchSize: 12000, maxEpochs: 1 } })).status).toBe(201);
    expect((await api('/api/jobs', { id: 'stopped', source: { kind: 'demo', demo: 'mnist-mlp' }, settings: { name: 'Stopped MLP' } })).status).toBe(201);
    expect((await api('/api/jobs/stopped/cancel')).status).toBe(200);

    const ctx = await browser.newContext({ viewport: { width: 1360, height: 900 } });
    ctx.on('response', (r) => {
      if (r.status() === 404) notFound.push(r.url());
    });

    // ---- the dashboard of a job with no workers: no rate, no ETA, no empty charts --------------
    const admin = await ctx.newPage();
    await admin.goto(`${url}/admin/#token=${TOKEN}`);
    await expect(admin.locator('#overview')).toBeVisible();
    await expect(admin.locator('#jobs tbody tr')).toHaveCount(3);
    const demoRow = admin.locator('#jobs tbody tr', { hasText: 'MNIST MLP' });
    await expect(demoRow.locator('td').nth(6)).toHaveText('—'); // samples/s
    await expect(demoRow.locator('td').nth(9)).toHaveText('—'); // ETA
    await admin.screenshot({ path: `${ART}/first-hour-overview-idle.png`, fullPage: true });
    await admin.goto(`${url}/admin/#/job/mnist-mlp`);
    await expect(admin.locator('#j-status')).toHaveText('running');
    await expect(admin.locator('#k-workers')).toHaveText('0');
    await expect(admin.locator('#k-sps')).toHaveText('—');
    await expect(admin.locator('#k-eta')).toHaveText('—');
    await expect(admin.locator('#k-eta-note')).toHaveText('no estimate without workers');
    await expect(admin.locator('#k-epoch')).toHaveText('epoch 1 of 10');
    for (const ch of ['#ch-acc', '#ch-train', '#ch-tput', '#ch-upd', '#ch-stale']) {
      await expect(admin.locator(`${ch} p.empty`)).toBeVisible();
      await expect(admin.locator(`${ch} canvas`)).toHaveCount(0);
    }
    await expect(admin.locator('#j-share')).toHaveAttribute('href', `${url}/?job=mnist-mlp`);
    await admin.waitForTimeout(1500); // a few telemetry points (all idle) must not bring the charts back
    await expect(admin.locator('#ch-tput canvas')).toHaveCount(0);
    await admin.screenshot({ path: `${ART}/first-hour-dashboard-idle.png`, fullPage: true });

    // ---- ?job=nope: says so, offers the running job, starts nothing even with autostart -------
    const vol = await ctx.newPage();
    await vol.goto(`${url}/?job=nope&autostart=1`);
    await expect(vol.locator('#job-name')).toHaveText('No such job');
    await expect(vol.locator('#job-lead')).toContainText('no job “nope”');
    await expect(vol.locator('#contribute')).toBeHidden();
    await expect(vol.locator('#other-jobs a[href="/?job=mnist-mlp"]')).toHaveText('MNIST MLP');
    await expect(vol.locator('#other-jobs a[href="/?job=quick"]')).toHaveText('Quick MLP');
    await expect(vol.locator('#other-jobs a[href="/?job=stopped"]')).toHaveCount(0);
    await vol.waitForTimeout(1000);
    expect(await flock(vol)).toMatchObject({ started: false, jobProblem: 'unknown' });
    expect(((await (await fetch(`${url}/api/jobs/mnist-mlp`)).json()) as { workers: number }).workers).toBe(0);
    await vol.screenshot({ path: `${ART}/first-hour-unknown-job.png`, fullPage: true });

    // ---- a cancelled job: no Contribute, says so, offers the running ones ---------------------
    await vol.goto(`${url}/?job=stopped&autostart=1`);
    await expect(vol.locator('#job-name')).toHaveText('Stopped MLP');
    await expect(vol.locator('#job-lead')).toContainText('cancelled by its admin');
    await expect(vol.locator('#contribute')).toBeHidden();
    await expect(vol.locator('#other-jobs a[href="/?job=mnist-mlp"]')).toBeVisible();
    expect(await flock(vol)).toMatchObject({ started: false, jobProblem: 'cancelled' });

    // ---- a volunteer trains the one-epoch job to the end -------------------------------------
    const trainer = await ctx.newPage();
    await trainer.goto(`${url}/?job=quick&autostart=1&backend=wasm`);
    await expect.poll(async () => ((await (await fetch(`${url}/api/jobs/quick`)).json()) as { status: string }).status, { timeout: 180_000, intervals: [1000] }).toBe('finished');
    const quick = (await (await fetch(`${url}/api/jobs/quick`)).json()) as { metrics: { testAccuracy: number }; epoch: number; shards: { done: number; perEpoch: number }; best: { version: number; testAccuracy: number } };
    expect(quick.epoch).toBe(1);
    expect(quick.shards.done).toBe(quick.shards.perEpoch);
    expect(quick.best.version).toBeGreaterThan(0);
    await trainer.close();

    // ---- its link now: finished, the final accuracy, no Contribute, the running jobs ----------
    await vol.goto(`${url}/?job=quick`);
    const accText = `${(quick.metrics.testAccuracy * 100).toFixed(2)}%`;
    await expect(vol.locator('#job-name')).toHaveText('Quick MLP');
    await expect(vol.locator('#job-lead')).toContainText(`This job is finished: its final model reached ${accText} test accuracy`);
    await expect(vol.locator('#accuracy')).toHaveText(accText);
    await expect(vol.locator('#contribute')).toBeHidden();
    await expect(vol.locator('#other-jobs a[href="/?job=mnist-mlp"]')).toBeVisible();
    expect(await flock(vol)).toMatchObject({ started: false, jobProblem: 'finished' });
    await vol.screenshot({ path: `${ART}/first-hour-finished-job.png`, fullPage: true });

    // ---- the dashboard: every shard done, best checkpoint named, ETA done -------------------
    await admin.goto(`${url}/admin/#/job/quick`);
    await expect(admin.locator('#j-status')).toHaveText('finished');
    await expect(admin.locator('#shards-h')).toHaveText('Shards: every epoch done');
    await expect(admin.locator('#s-done')).toHaveText(String(quick.shards.perEpoch));
    await expect(admin.locator('#k-eta')).toHaveText('done');
    await expect(admin.locator('#k-epoch')).toHaveText('epoch 1 of 1');
    await expect(admin.locator('#ckpts tr[data-which~="best"]')).toHaveCount(1);
    await expect(admin.locator('#dl-best-item')).toBeVisible();
    await expect(admin.locator('#dl-best-note')).toContainText(`best by test accuracy: v${quick.best.version}`);
    await expect(admin.locator('#j-share')).toHaveAttribute('href', `${url}/?job=quick`);
    const bestModel = await (await fetch(`${url}/api/jobs/quick/model/model.json?which=best`)).json() as { weightsManifest: { paths: string[] }[] };
    expect(bestModel.weightsManifest[0]!.paths[0]).toBe(`weights-best-v${quick.best.version}.bin`);
    await admin.screenshot({ path: `${ART}/first-hour-dashboard-finished.png`, fullPage: true });

    expect(notFound, 'no request may 404 (favicon included)').toEqual([]);
    await ctx.close();
  } finally {
    await coord.stop('SIGTERM');
    rmSync(dataDir, { recursive: true, force: true });
  }
});
