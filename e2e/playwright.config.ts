// Playwright journeys in Debian's Chromium (see e2e/browser.ts). One worker: the journeys train
// real models and share this machine's two cores.
import { defineConfig } from '@playwright/test';
import { launchOptions } from './browser.ts';

export default defineConfig({
  testDir: '.',
  testMatch: /.*\.e2e\.ts$/,
  outputDir: '../test-results',
  timeout: 240_000,
  expect: { timeout: 30_000 },
  workers: 1,
  retries: 0,
  reporter: [['list']],
  use: { launchOptions: launchOptions(), screenshot: 'only-on-failure', trace: 'off' },
});
