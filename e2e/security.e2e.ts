// Journey: the pages under the Content-Security-Policy. A volunteer tab trains on WASM with
// threads (wasm compiled under 'wasm-unsafe-eval', its Web Worker, the pthread workers from blob:
// URLs; `?wasmThreads=2` so a pool really starts on a 2-core machine) and the dashboard loads, with no CSP violation on either; the headers are on the answers.

import { test, expect, type Page } from '@playwright/test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startCoordinatorProcess } from './coordinator-process.ts';

const TOKEN = 'e2e-admin-token';

async function watchViolations(page: Page): Promise<string[]> {
  const seen: string[] = [];
  page.on('console', (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) seen.push(m.text());
  });
  await page.exposeFunction('__cspViolation', (v: string) => seen.push(v));
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      (window as unknown as { __cspViolation: (v: string) => void }).__cspViolation(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  return seen;
}

test('CSP: a WASM tab trains with threads and the dashboard loads, no violation', async ({ browser }) => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'flock-e2e-csp-'));
  const coord = await startCoordinatorProcess({ FLOCK_DATA_DIR: dataDir, FLOCK_ADMIN_TOKEN: TOKEN, FLOCK_DEMO: 'mnist-mlp', FLOCK_MAX_EPOCHS: '50' });
  try {
    const head = await fetch(`${coord.url}/`);
    const csp = head.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("'wasm-unsafe-eval'");
    expect(head.headers.get('x-content-type-options')).toBe('nosniff');
    expect(head.headers.get('referrer-policy')).toBe('no-referrer');
    expect((await fetch(`${coord.url}/api/jobs`)).headers.get('access-control-allow-origin')).toBeNull();

    const ctx = await browser.newContext();
    const tab = await ctx.newPage();
    const violations = await watchViolations(tab);
    await tab.goto(`${coord.url}/?autostart=1&backend=wasm&wasmThreads=2`);
    expect(await tab.evaluate(() => crossOriginIsolated)).toBe(true);
    await expect.poll(async () => tab.evaluate(() => (window as unknown as { flock: { stats: { accepted: number } | null } }).flock.stats?.accepted ?? 0), { timeout: 90_000 }).toBeGreaterThan(3);
    const workers = (await (await fetch(`${coord.url}/api/workers`, { headers: { Authorization: `Bearer ${TOKEN}` } })).json()) as { capabilities: { backend: string; wasmThreads?: boolean } }[];
    expect(workers.map((w) => w.capabilities.backend)).toContain('wasm');
    expect(workers.some((w) => w.capabilities.wasmThreads === true), JSON.stringify(workers.map((w) => w.capabilities))).toBe(true);

    const admin = await ctx.newPage();
    const adminViolations = await watchViolations(admin);
    await admin.goto(`${coord.url}/admin/#token=${TOKEN}`);
    await admin.waitForTimeout(3000);
    await admin.screenshot({ path: 'e2e/artifacts/security-admin.png' });
    await tab.screenshot({ path: 'e2e/artifacts/security-volunteer.png' });
    expect(violations, violations.join('\n')).toEqual([]);
    expect(adminViolations, adminViolations.join('\n')).toEqual([]);
    await ctx.close();
  } finally {
    await coord.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
