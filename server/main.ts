// Command-line entry: reads the environment, starts the coordinator with the demo job, prints the
// volunteer and dashboard URLs, and shuts down cleanly on SIGINT/SIGTERM (checkpoint, then exit).

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startCoordinator, consoleLogger } from './coordinator.ts';
import { DEMOS, type DemoName } from './jobs/demos.ts';
import type { JobConfig } from './jobs/job-config.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const env = process.env;

function demoFromEnv(): DemoName | null {
  const d = env.FLOCK_DEMO ?? 'mnist-mlp';
  if (d === 'none') return null;
  if (!(DEMOS as readonly string[]).includes(d)) {
    console.error(`FLOCK_DEMO must be one of ${DEMOS.join(', ')} or none; got ${d}`);
    process.exit(2);
  }
  return d as DemoName;
}

function overridesFromEnv(): Partial<JobConfig> {
  const o: { -readonly [K in keyof JobConfig]?: JobConfig[K] } = {};
  const num = (name: string): number | undefined => {
    const v = env[name];
    if (v === undefined || v === '') return undefined;
    const n = Number(v);
    if (!Number.isFinite(n)) {
      console.error(`${name} must be a number; got ${v}`);
      process.exit(2);
    }
    return n;
  };
  const epochs = num('FLOCK_MAX_EPOCHS');
  const target = num('FLOCK_TARGET_ACCURACY');
  if (epochs !== undefined || target !== undefined) o.stop = { maxEpochs: epochs ?? 10, targetAccuracy: target ?? null };
  const every = num('FLOCK_EVAL_EVERY');
  if (every !== undefined) o.evalEveryVersions = every;
  const timeout = num('FLOCK_LEASE_TIMEOUT_MS');
  if (timeout !== undefined) o.leaseTimeoutMs = timeout;
  const batch = num('FLOCK_BATCH_SIZE');
  if (batch !== undefined) o.batchSize = batch;
  return o;
}

/** An environment variable that must be one of `allowed` (first = default); exits on anything else. */
function oneOf<T extends string>(name: string, allowed: readonly T[]): T {
  const v = env[name];
  if (v === undefined || v === '') return allowed[0]!;
  if (!(allowed as readonly string[]).includes(v)) {
    console.error(`${name} must be one of ${allowed.join(', ')}; got ${v}`);
    process.exit(2);
  }
  return v as T;
}

function portFromEnv(): number {
  const v = env.PORT ?? '8080';
  const n = Number(v);
  if (v === '' || !Number.isInteger(n) || n < 0 || n > 65535) {
    console.error(`PORT must be an integer 0..65535; got ${v}`);
    process.exit(2);
  }
  return n;
}

const drainMs = Number(env.FLOCK_DRAIN_MS ?? 3000);
const overrides = overridesFromEnv();
const coordinator = await startCoordinator({
  port: portFromEnv(),
  host: env.HOST ?? '127.0.0.1',
  dataDir: path.resolve(env.FLOCK_DATA_DIR ?? './data'),
  clientDir: path.join(root, 'dist', 'client'),
  adminToken: env.FLOCK_ADMIN_TOKEN,
  demo: demoFromEnv(),
  demoOverrides: overrides,
  store: oneOf('FLOCK_STORE', ['sqlite', 'memory'] as const),
  sqliteSync: oneOf('FLOCK_SQLITE_SYNC', ['NORMAL', 'FULL'] as const),
  checkpointPauseMs: Number(env.FLOCK_FAULT_CHECKPOINT_PAUSE_MS ?? 0),
  log: consoleLogger,
});

if (Object.keys(overrides).length > 0 && !coordinator.createdDemo) {
  consoleLogger.warn(
    `demo settings from the environment (FLOCK_MAX_EPOCHS, FLOCK_BATCH_SIZE, ...) apply only to a new demo job; ` +
      `${path.resolve(env.FLOCK_DATA_DIR ?? './data')} already holds jobs, which keep their own settings (delete it to start over)`,
  );
}

console.log(`
  Flock coordinator is running.
  Volunteer page:  ${coordinator.url}/
  Dashboard:       ${coordinator.url}/admin/#token=${coordinator.adminToken}
  Admin token:     ${coordinator.adminToken}${env.FLOCK_ADMIN_TOKEN ? ' (from FLOCK_ADMIN_TOKEN)' : ' (generated; set FLOCK_ADMIN_TOKEN to fix it)'}
  Jobs API:        ${coordinator.url}/api/jobs
`);

let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  consoleLogger.info(`${signal}: checkpointing and stopping`);
  const timer = setTimeout(() => process.exit(1), drainMs + 15_000);
  // Stop leasing, give in-flight gradients a moment to land, checkpoint, exit.
  await coordinator.shutdown(drainMs);
  clearTimeout(timer);
  process.exit(0);
}
process.on('SIGINT', () => void shutdown('SIGINT'));
process.on('SIGTERM', () => void shutdown('SIGTERM'));
