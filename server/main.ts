// Command-line entry: `serve(env)` checks every setting first (settingsFromEnv), binds the port,
// locks the data folder, starts the coordinator with the demo job, prints the volunteer and
// dashboard URLs, and shuts down cleanly on SIGINT/SIGTERM (checkpoint, then exit). Any start-up
// failure is one line on stderr and a non-zero exit. `npm start` runs this file directly.

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startCoordinator, StartupError } from './coordinator.ts';
import { createLogger } from './logging.ts';
import { settingsFromEnv } from './settings.ts';
import { ADMIN_TOKEN_FILE } from './http/admin-token-file.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Exit codes: 2 a setting is refused; 1 the coordinator could not start (port, lock, data). */
export const EXIT_SETTINGS = 2;
export const EXIT_START = 1;

function die(code: number, line: string): never {
  // One line, no stack: every start-up failure tells what, which setting and what to do.
  process.stderr.write(`flock: ${line.replace(/\s*\n\s*/g, ' ')}\n`);
  process.exit(code);
}

export async function serve(env: NodeJS.ProcessEnv): Promise<void> {
  const parsed = settingsFromEnv(env);
  if (!parsed.ok) die(EXIT_SETTINGS, parsed.error);
  const s = parsed.settings;
  const log = createLogger({ format: s.logFormat });

  let coordinator: Awaited<ReturnType<typeof startCoordinator>>;
  try {
    coordinator = await startCoordinator({
      port: s.port,
      host: s.host,
      dataDir: s.dataDir,
      clientDir: path.join(root, 'dist', 'client'),
      adminToken: s.adminToken,
      ownDataDir: true,
      demo: s.demo,
      demoOverrides: s.demoOverrides,
      store: s.store,
      redis: s.redisUrl ? { url: s.redisUrl, prefix: s.redisPrefix, leaderTtlMs: s.leaderTtlMs, preAggregateMs: s.preAggregateMs, advertiseUrl: s.advertiseUrl } : undefined,
      sqliteSync: s.sqliteSync,
      checkpointPauseMs: s.checkpointPauseMs,
      limits: s.limits,
      door: s.door,
      spotCheckSameAddress: s.spotCheckSameAddress,
      metricsPort: s.metricsPort,
      evaluationThread: true,
      log,
    });
  } catch (err) {
    if (err instanceof StartupError) die(EXIT_START, err.message);
    die(EXIT_START, `cannot start: ${(err as Error).message}`);
  }

  if (Object.keys(s.demoOverrides).length > 0 && !coordinator.createdDemo && !coordinator.cluster) {
    log.warn(
      `demo settings from the environment (FLOCK_MAX_EPOCHS, FLOCK_BATCH_SIZE, ...) apply only to a new demo job; ` +
        `${s.dataDir} already holds jobs, which keep their own settings (delete it to start over)`,
    );
  }

  const tokenNote = s.adminToken ? ' (from FLOCK_ADMIN_TOKEN)' : ` (kept in ${path.join(s.dataDir, ADMIN_TOKEN_FILE)}; delete that file to rotate it)`;
  console.log(`
  Flock coordinator is running.
  Volunteer page:  ${coordinator.url}/
  Dashboard:       ${coordinator.url}/admin/#token=${coordinator.adminToken}
  Admin token:     ${coordinator.adminToken}${tokenNote}
  Jobs API:        ${coordinator.url}/api/jobs
  Metrics:         ${coordinator.url}/metrics (admin token)${coordinator.metricsPort !== null ? `; http://${s.host}:${coordinator.metricsPort}/metrics (no token)` : ''}
`);
  log.info('coordinator started', { url: coordinator.url, jobs: coordinator.registry.all().map((j) => j.id), metricsPort: coordinator.metricsPort });

  let stopping = false;
  async function shutdown(signal: string): Promise<void> {
    if (stopping) return;
    stopping = true;
    log.info(`${signal}: checkpointing and stopping`);
    const timer = setTimeout(() => process.exit(1), s.drainMs + 15_000);
    // Stop leasing, give in-flight gradients a moment to land, checkpoint, exit.
    await coordinator.shutdown(s.drainMs);
    clearTimeout(timer);
    log.info('stopped');
    process.exit(0);
  }
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  serve(process.env).catch((err: Error) => die(EXIT_START, `cannot start: ${err.message}`));
}
