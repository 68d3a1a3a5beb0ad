// Launches Debian's Chromium (never a downloaded browser) with WebGPU on, for journeys and benchmarks.
// Falls back to Playwright's own browser where /usr/bin/chromium is missing.

import { existsSync } from 'node:fs';
import { chromium, type Browser, type LaunchOptions } from '@playwright/test';

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--enable-unsafe-webgpu',
];

export function launchOptions(): LaunchOptions {
  const exe = process.env.FLOCK_CHROMIUM ?? '/usr/bin/chromium';
  return existsSync(exe) ? { executablePath: exe, headless: true, args: CHROMIUM_ARGS } : { headless: true, args: CHROMIUM_ARGS };
}

export function launchBrowser(): Promise<Browser> {
  return chromium.launch(launchOptions());
}
