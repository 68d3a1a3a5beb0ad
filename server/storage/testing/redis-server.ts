// Test fixture: a private redis-server on a free loopback port with its own temp directory
// (AOF on, appendfsync always, no RDB snapshots), killed and removed by stop(). Tests that need
// Redis call startRedis() (or redisPerFile() for one server shared by a file's tests); when
// /usr/bin/redis-server is missing they skip with redisMissing().

import { spawn, type ChildProcess } from 'node:child_process';
import { after, before } from 'node:test';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

export const REDIS_BIN = process.env.FLOCK_REDIS_SERVER_BIN ?? '/usr/bin/redis-server';

/** Why Redis tests are skipped here, or false when they can run. */
export function redisMissing(): string | false {
  return existsSync(REDIS_BIN) ? false : `${REDIS_BIN} is missing (apt-get install -y redis-server; .ci/run does it)`;
}

/**
 * One redis-server for the calling test file: started before its tests, stopped after they ran.
 * `skip`: why the file's tests cannot run here (false when they can); `server()`: the running one.
 */
export function redisPerFile(): { readonly skip: string | false; server(): RedisFixture } {
  const skip = redisMissing();
  let running: RedisFixture | null = null;
  before(async () => {
    if (!skip) running = await startRedis();
  });
  after(async () => {
    await running?.stop();
  });
  return {
    skip,
    server: () => {
      if (!running) throw new Error('redis-server is not running (skipped, or asked for outside a test)');
      return running;
    },
  };
}

export interface RedisFixture {
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  /** Kills the server and removes its directory. */
  stop(): Promise<void>;
  /** SIGKILLs the server and starts it again on the same port and directory (AOF replay). */
  restart(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

async function launch(port: number, dir: string): Promise<ChildProcess> {
  const child = spawn(
    REDIS_BIN,
    ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--daemonize', 'no', '--loglevel', 'warning'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const deadline = Date.now() + 10_000;
  // Ready when a TCP connection answers PING.
  for (;;) {
    if (child.exitCode !== null) throw new Error(`redis-server exited (${child.exitCode}): ${out}`);
    if (await pings(port)) return child;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`redis-server did not answer on port ${port}: ${out}`);
    }
    await new Promise((r) => setTimeout(r, 30));
  }
}

async function pings(port: number): Promise<boolean> {
  const { connect } = await import('node:net');
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.setTimeout(500);
    s.once('connect', () => s.write('PING\r\n'));
    s.once('data', (d) => {
      s.destroy();
      resolve(d.toString().startsWith('+PONG'));
    });
    s.once('error', () => resolve(false));
    s.once('timeout', () => {
      s.destroy();
      resolve(false);
    });
  });
}

function killAndWait(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

export async function startRedis(): Promise<RedisFixture> {
  const dir = mkdtempSync(path.join(tmpdir(), 'flock-redis-'));
  const port = await freePort();
  let child = await launch(port, dir);
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    async stop() {
      await killAndWait(child);
      rmSync(dir, { recursive: true, force: true });
    },
    async restart() {
      await killAndWait(child);
      child = await launch(port, dir);
    },
  };
}
