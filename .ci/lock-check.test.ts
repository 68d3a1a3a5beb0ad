// .ci/lock-check (run by .ci/run before `npm ci`): passes on this repository's lock, fails with a
// one-line reason and a diff when package.json no longer matches package-lock.json.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const check = (dir: string) => spawnSync(path.join(root, '.ci', 'lock-check'), [dir], { encoding: 'utf8', timeout: 120_000 });

test('the lock check passes on this repository and fails on a lock that npm install would rewrite', { timeout: 240_000 }, () => {
  const ok = check(root);
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /package-lock\.json matches package\.json/);

  const dir = mkdtempSync(path.join(os.tmpdir(), 'flock-lock-check-'));
  try {
    copyFileSync(path.join(root, 'package-lock.json'), path.join(dir, 'package-lock.json'));
    const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    pkg.dependencies.zod = pkg.dependencies.zod!.replace(/^\^/, '~'); // a range edited without updating the lock
    writeFileSync(path.join(dir, 'package.json'), JSON.stringify(pkg, null, 2) + '\n');
    const stale = check(dir);
    assert.equal(stale.status, 1);
    assert.match(stale.stderr, /^package-lock\.json is out of date: `npm install` would rewrite it\./);
    assert.match(stale.stderr, /zod/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
