// Journeys: a volunteer tab measures its backends on the job's model at start-up and keeps the
// fastest (WASM over SwiftShader's software WebGPU on this GPU-less machine), reporting the figures
// to the coordinator; and a tab given a model it cannot train says so and refuses the job.

import { test, expect, type Page } from '@playwright/test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startCoordinatorProcess } from './coordinator-process.ts';
import { startCoordinator } from '../server/coordinator.ts';
import { demoConfig } from '../server/jobs/demos.ts';
import { initNodeBackend } from '../shared/training/node-backend.ts';
import type { ProbeOutcome } from '../shared/training/backend-choice.ts';

const TOKEN = 'e2e-admin-token';
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

interface FlockView {
  state: string;
  fatal: string | null;
  backend: { backend: string; reason: string; probes: ProbeOutcome[] } | null;
  stats: { accepted: number } | null;
}
const flock = (p: Page): Promise<FlockView> => p.evaluate(() => (window as unknown as { flock: FlockView }).flock);

test('the tab probes the CNN on every backend and keeps WASM over software WebGPU', async ({ page }) => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'flock-e2e-probe-'));
  const coord = await startCoordinatorProcess({ FLOCK_DATA_DIR: dataDir, FLOCK_ADMIN_TOKEN: TOKEN, FLOCK_DEMO: 'mnist-cnn' });
  try {
    await page.goto(`${coord.url}/?autostart=1`);
    await page.waitForFunction(() => {
      const f = (window as unknown as { flock: FlockView }).flock;
      return (f.backend?.probes.length ?? 0) > 0 || f.fatal !== null;
    }, null, { timeout: 60_000 });
    const view = await flock(page);
    expect(view.fatal).toBeNull();
    const probes = view.backend!.probes;
    const wasm = probes.find((p) => p.backend === 'wasm');
    const gpu = probes.find((p) => p.backend === 'webgpu');
    test.info().annotations.push({ type: 'probe', description: view.backend!.reason });
    // Measured, not assumed: WASM trained the CNN, and software WebGPU was tried and lost to it.
    expect(wasm?.status).toBe('ok');
    expect(gpu?.software).toBe(true);
    expect(gpu!.samplesPerSec).toBeLessThan(wasm!.samplesPerSec);
    expect(probes.map((p) => p.backend)).toEqual(['wasm', 'cpu', 'webgpu']);
    expect(view.backend!.backend).toBe('wasm');
    expect(view.backend!.reason).toMatch(/^WASM measured fastest/);
    // The whole probe stays within its budget (2 s, plus one step a backend may overrun by).
    const spent = probes.reduce((s, p) => s + p.warmupMs, 0);
    expect(spent).toBeLessThan(3000);

    // The coordinator got the figures in the hello, and the tab trains on WASM.
    const workers = (await (await fetch(`${coord.url}/api/workers`, { headers: { Authorization: `Bearer ${TOKEN}` } })).json()) as
      { capabilities: { backend: string; probes?: { backend: string; samplesPerSec: number; status?: string; software?: boolean }[] } }[];
    expect(workers).toHaveLength(1);
    expect(workers[0]!.capabilities.backend).toBe('wasm');
    expect(workers[0]!.capabilities.probes?.find((p) => p.backend === 'wasm')?.samplesPerSec).toBeCloseTo(wasm!.samplesPerSec, 3);
    expect(workers[0]!.capabilities.probes?.find((p) => p.backend === 'webgpu')?.software).toBe(true);
    await expect.poll(async () => (await flock(page)).stats?.accepted ?? 0, { timeout: 60_000 }).toBeGreaterThanOrEqual(2);
    await expect(page.locator('#backend')).toHaveText('WASM');
  } finally {
    await coord.stop('SIGTERM');
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('a model no backend can train: the page says so and the coordinator is told', async ({ page }) => {
  // A job whose output layer starts at 1e38: its logits overflow, so every probe step has NaN
  // gradients on every backend. Served by a coordinator in this process (the CLI only makes demos).
  const dataDir = mkdtempSync(path.join(tmpdir(), 'flock-e2e-unsupported-'));
  await initNodeBackend('wasm');
  const base = demoConfig('mnist-mlp');
  const topology = structuredClone(base.modelTopology) as { config: { layers: { config: Record<string, unknown> }[] } };
  topology.config.layers.at(-1)!.config.kernel_initializer = { class_name: 'Constant', config: { value: 1e38 } };
  const logs: string[] = [];
  const coord = await startCoordinator({
    port: 0, host: '127.0.0.1', dataDir, clientDir: path.join(root, 'dist', 'client'), adminToken: TOKEN, demo: 'mnist-mlp',
    demoOverrides: { name: 'Untrainable', modelTopology: topology as unknown as Record<string, unknown> },
    log: { info: (m) => logs.push(m), warn: (m) => logs.push(m) },
  });
  try {
    await page.goto(`${coord.url}/?autostart=1`);
    await expect.poll(async () => (await flock(page)).state, { timeout: 60_000 }).toBe('unsupported');
    // Visible on the page: the state line, and a notice that says why.
    await expect(page.locator('#state')).toContainText('this device cannot train this model');
    await expect(page.getByText(/Training stopped: .*non-finite gradients on a probe step/)).toBeVisible();
    const view = await flock(page);
    expect(view.fatal).toMatch(/no backend can train this model here/);
    expect(view.stats?.accepted ?? 0).toBe(0);
    expect(view.fatal).toMatch(/WASM failed \(non-finite gradients on a probe step\)/);
    expect(view.backend, 'no backend is reported as in use').toBeNull();
    await expect.poll(() => logs.join('\n'), { timeout: 10_000 }).toMatch(/cannot train job mnist-mlp: no backend can train this model here/);
    expect(coord.registry.all()[0]!.summary().updates.applied).toBe(0);
    await page.screenshot({ path: 'e2e/artifacts/volunteer-unsupported.png', fullPage: true });
  } finally {
    await coord.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
