// Start-up with real coordinator processes (server/main.ts): one coordinator per data folder (a
// second exits at once naming the holder), one-line failures for a busy port, an unknown host and a
// refused setting with nothing written in the data folder, the admin token kept across restarts
// (mode 0600), the final checkpoint printed on Ctrl-C, and a SIGKILLed holder's lock taken over.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startCoordinatorProcess } from '../e2e/coordinator-process.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Runs the CLI until it exits (it must, within the timeout); returns its code and all it printed. */
function runToExit(env: Record<string, string>, timeoutMs = 60_000): Promise<{ code: number | null; output: string; ms: number }> {
  const t0 = Date.now();
  const proc = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts'], { cwd: root, env: { ...process.env, HOST: '127.0.0.1', PORT: '0', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  proc.stdout.on('data', (b: Buffer) => (output += b.toString()));
  proc.stderr.on('data', (b: Buffer) => (output += b.toString()));
  const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) => proc.once('close', (code) => {
    clearTimeout(timer);
    resolve({ code, output, ms: Date.now() - t0 });
  }));
}

function assertOneLine(output: string, re: RegExp): void {
  const lines = output.split('\n').filter((l) => l.trim() !== '');
  assert.equal(lines.length, 1, `expected one line, got:\n${output.slice(0, 2000)}`);
  assert.match(lines[0]!, re);
  assert.doesNotMatch(output, /^\s+at /m);
}

const tmp = (): string => mkdtempSync(path.join(os.tmpdir(), 'flock-startup-'));
const untouched = (dir: string): boolean => !existsSync(dir) || readdirSync(dir).length === 0;

test('one coordinator per data folder; start-up failures are one line; the token is kept', { timeout: 240_000 }, async () => {
  const dataDir = tmp();
  const fresh = [tmp(), tmp(), tmp()];
  let first = await startCoordinatorProcess({ FLOCK_DATA_DIR: dataDir, FLOCK_DEMO: 'mnist-mlp', FLOCK_DRAIN_MS: '0' });
  try {
    // ---- a second coordinator on the same folder exits at once, naming the holder ----------------
    const second = await runToExit({ FLOCK_DATA_DIR: dataDir, FLOCK_DEMO: 'mnist-mlp' });
    assert.equal(second.code, 1);
    assertOneLine(second.output, new RegExp(`^flock: data folder ${dataDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is in use by process ${first.proc.pid} on `));
    assert.ok(second.ms < 20_000, `took ${second.ms} ms`);
    assert.equal(JSON.parse(readFileSync(path.join(dataDir, 'flock.lock'), 'utf8')).pid, first.proc.pid);

    // ---- busy port, unknown host, refused setting: one line, non-zero, nothing written -----------
    const busy = await runToExit({ FLOCK_DATA_DIR: path.join(fresh[0]!, 'd'), PORT: String(first.port) });
    assert.equal(busy.code, 1);
    assertOneLine(busy.output, new RegExp(`^flock: port ${first.port} on 127\\.0\\.0\\.1 is already in use .*set PORT to a free port`));
    const host = await runToExit({ FLOCK_DATA_DIR: path.join(fresh[1]!, 'd'), HOST: 'no-such-host.invalid' });
    assert.equal(host.code, 1);
    assertOneLine(host.output, /^flock: HOST=no-such-host\.invalid is not a known host name: set HOST to /);
    const target = await runToExit({ FLOCK_DATA_DIR: path.join(fresh[2]!, 'd'), FLOCK_TARGET_ACCURACY: '970' });
    assert.equal(target.code, 2);
    assertOneLine(target.output, /^flock: FLOCK_TARGET_ACCURACY="970" is not accepted: use a fraction in \(0, 1\] such as 0\.97, or a percent in \(1, 100\] such as 97$/);
    for (const d of fresh) assert.ok(untouched(path.join(d, 'd')), `${d} was written: ${readdirSync(d).join(', ')}`);

    // ---- the token is kept in the data folder (0600); Ctrl-C prints the final checkpoint ---------
    const tokenFile = path.join(dataDir, 'admin-token');
    assert.equal(readFileSync(tokenFile, 'utf8').trim(), first.token);
    assert.equal(statSync(tokenFile).mode & 0o777, 0o600);
    const token = first.token;
    assert.equal(await first.stop('SIGINT'), 0);
    assert.ok(first.logs.some((l) => /job mnist-mlp: checkpoint v\d+ saved/.test(l)), first.logs.join('\n'));
    assert.equal(existsSync(path.join(dataDir, 'flock.lock')), false);

    first = await startCoordinatorProcess({ FLOCK_DATA_DIR: dataDir, FLOCK_DRAIN_MS: '0' });
    assert.equal(first.token, token);
    assert.equal((await fetch(`${first.url}/api/session`, { headers: { Authorization: `Bearer ${token}` } })).status, 200);

    // ---- a SIGKILLed holder leaves its lock; the next start takes it over ------------------------
    await first.stop('SIGKILL');
    assert.ok(existsSync(path.join(dataDir, 'flock.lock')));
    first = await startCoordinatorProcess({ FLOCK_DATA_DIR: dataDir, FLOCK_DRAIN_MS: '0', FLOCK_ADMIN_TOKEN: 'from-the-env' });
    assert.equal(first.token, 'from-the-env');
    assert.ok(first.logs.some((l) => /took over the lock .* which is gone/.test(l)), first.logs.join('\n'));
    assert.equal(readFileSync(tokenFile, 'utf8').trim(), token, 'FLOCK_ADMIN_TOKEN leaves the kept token alone');
  } finally {
    await first.stop('SIGTERM');
    for (const d of [dataDir, ...fresh]) rmSync(d, { recursive: true, force: true });
  }
});
