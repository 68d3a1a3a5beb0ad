// Journey: the gradient coverage matrix in headless Chromium (/coverage/): every listed layer,
// activation and loss trains on cpu, wasm and webgpu (SwiftShader here), each backend agreeing with
// cpu within its tolerance (shared/kernels/coverage/run.ts, REL_TOLERANCE, says why each).

import { test, expect } from '@playwright/test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startCoordinatorProcess, type CoordinatorProcess } from './coordinator-process.ts';
import { COVERAGE_CASES } from '../shared/kernels/coverage/cases.ts';
import { REL_TOLERANCE, type CoverageRow } from '../shared/kernels/coverage/run.ts';

interface CoverageState {
  done: boolean;
  adapter: { architecture: string; isFallbackAdapter: boolean } | null;
  backends: string[];
  rows: CoverageRow[];
  error: string | null;
}

const BACKENDS = ['cpu', 'wasm', 'webgpu'];

let coord: CoordinatorProcess;
let dataDir: string;

test.beforeAll(async () => {
  dataDir = mkdtempSync(path.join(tmpdir(), 'flock-e2e-coverage-'));
  coord = await startCoordinatorProcess({ FLOCK_DATA_DIR: dataDir, FLOCK_DEMO: 'none' });
});

test.afterAll(async () => {
  await coord?.stop('SIGTERM');
  rmSync(dataDir, { recursive: true, force: true });
});

test('every case computes the same gradients on cpu, wasm and webgpu as on cpu', async ({ page }) => {
  test.setTimeout(180_000);
  await page.goto(`${coord.url}/coverage/`);
  await page.waitForFunction(() => (window as unknown as { flockCoverage?: { done: boolean } }).flockCoverage?.done === true, null, { timeout: 150_000 });
  const st = await page.evaluate(() => (window as unknown as { flockCoverage: CoverageState }).flockCoverage);
  await page.screenshot({ path: 'e2e/artifacts/coverage-matrix.png', fullPage: true });
  expect(st.error).toBeNull();
  // This machine has no GPU: WebGPU is Chromium's software adapter, which still runs real WGSL.
  expect(st.adapter?.isFallbackAdapter, 'a WebGPU adapter (SwiftShader here) is needed to cover webgpu').toBe(true);
  expect(st.backends).toEqual(BACKENDS);
  expect(st.rows).toHaveLength(COVERAGE_CASES.length * BACKENDS.length);

  const failing = st.rows.filter((r) => r.status !== 'pass')
    .map((r) => `${r.backend} / ${r.case}: ${r.status}${r.kernel ? ` (${r.kernel})` : ''} rel ${r.maxRelDiff} ${r.message ?? ''}`);
  expect(failing, failing.join('\n')).toEqual([]);
  for (const b of BACKENDS) {
    const rows = st.rows.filter((r) => r.backend === b);
    expect(rows.map((r) => r.case)).toEqual(COVERAGE_CASES.map((c) => c.name));
    const worst = Math.max(...rows.map((r) => r.maxRelDiff ?? Number.POSITIVE_INFINITY));
    test.info().annotations.push({ type: `${b} worst relative difference`, description: worst.toExponential(2) });
    expect(worst).toBeLessThanOrEqual(REL_TOLERANCE[b]!);
    for (const r of rows) expect(r.tolerance).toBe(REL_TOLERANCE[b]);
  }
  // The comparison is not vacuous: wasm and webgpu do not compute bit-identical gradients.
  expect(st.rows.some((r) => r.backend === 'webgpu' && (r.maxAbsDiff ?? 0) > 0)).toBe(true);
  await expect(page.locator('#matrix tbody tr')).toHaveCount(COVERAGE_CASES.length);
});
