// The coordinator's settings, read from the environment by one pure function: every variable is
// checked (type and accepted range) before anything starts, and a bad one comes back as a single
// line that names the variable, what it got and what it accepts. Owns no state.

import { parseCompression } from '../shared/codec/compression.ts';
import path from 'node:path';
import { AGGREGATION_MODES, aggregationFor, type AggregationMode } from './aggregation/aggregation-config.ts';
import { COMBINE_RULES } from './aggregation/robust.ts';
import type { JobConfig } from './jobs/job-config.ts';
import { DEFAULT_LIMITS } from './jobs/limits.ts';
import { DEFAULT_DOOR_POLICY, type DoorPolicy } from './security/limits.ts';
import { parseTrustProxy } from './security/client-address.ts';
import { parseSameAddress, type SameAddressReplicas } from './validation/same-address.ts';

export const DEMO_NAMES = ['mnist-mlp', 'mnist-cnn', 'mnist-mlp-large'] as const;
export type DemoChoice = (typeof DEMO_NAMES)[number];

export interface Settings {
  readonly port: number;
  readonly host: string;
  /** Absolute. */
  readonly dataDir: string;
  /** From FLOCK_ADMIN_TOKEN; undefined: kept in `<dataDir>/admin-token` (generated once). */
  readonly adminToken: string | undefined;
  readonly demo: DemoChoice | null;
  /** Demo settings from the environment (they shape a new demo job only). */
  readonly demoOverrides: Partial<JobConfig>;
  readonly store: 'sqlite' | 'memory' | 'redis';
  /** FLOCK_REDIS_URL (FLOCK_STORE=redis only); e.g. redis://10.0.0.5:6379. */
  readonly redisUrl: string | undefined;
  /** FLOCK_REDIS_PREFIX: key prefix, so several clusters can share one Redis. */
  readonly redisPrefix: string;
  /** FLOCK_ADVERTISE_URL: how the other coordinators reach this one's HTTP API (default: its own URL). */
  readonly advertiseUrl: string | undefined;
  /** FLOCK_LEADER_TTL_MS: the ownership lease; a dead owner is replaced within about this long. */
  readonly leaderTtlMs: number;
  /** FLOCK_PREAGGREGATE_MS: how long a gateway holds a `buffered` + `mean` job's gradients to forward them combined (0: each alone). */
  readonly preAggregateMs: number;
  readonly sqliteSync: 'NORMAL' | 'FULL';
  readonly drainMs: number;
  readonly checkpointPauseMs: number;
  /** Size limits on submitted jobs (bytes). */
  readonly limits: { readonly maxModelBytes: number; readonly maxDatasetBytes: number };
  /** Rate, connection and lease limits at the door (server/security/limits.ts). */
  readonly door: DoorPolicy;
  /** FLOCK_SPOT_CHECK_SAME_ADDRESS: where two workers at one address may check each other (default: nowhere). */
  readonly spotCheckSameAddress: SameAddressReplicas;
  /** FLOCK_METRICS_PORT: /metrics without a token on this port too (absent: only behind the admin token). */
  readonly metricsPort: number | undefined;
  /** FLOCK_LOG_FORMAT: 'json' or 'pretty'; absent: pretty on a terminal, JSON otherwise. */
  readonly logFormat: 'json' | 'pretty' | undefined;
}

export type SettingsResult = { readonly ok: true; readonly settings: Settings } | { readonly ok: false; readonly error: string };

class SettingError extends Error {}

const shown = (v: string): string => JSON.stringify(v.length > 60 ? `${v.slice(0, 60)}…` : v);

function intIn(env: NodeJS.ProcessEnv, name: string, min: number, max: number, unit = ''): number | undefined {
  const v = env[name];
  if (v === undefined || v.trim() === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new SettingError(`${name}=${shown(v)} is not accepted: use a whole number from ${min.toLocaleString('en-US')} to ${max.toLocaleString('en-US')}${unit}`);
  }
  return n;
}

function oneOf<T extends string>(env: NodeJS.ProcessEnv, name: string, allowed: readonly T[]): T {
  const v = env[name];
  if (v === undefined || v === '') return allowed[0]!;
  if (!(allowed as readonly string[]).includes(v)) throw new SettingError(`${name}=${shown(v)} is not accepted: use one of ${allowed.join(', ')}`);
  return v as T;
}

/**
 * A target accuracy as a fraction in (0, 1]. A fraction is taken as is (0.97); a number in (1, 100]
 * can only be a percent (97 -> 0.97). Anything else is refused with the accepted forms.
 */
export function parseTargetAccuracy(raw: string): { ok: true; value: number } | { ok: false; error: string } {
  const n = Number(raw.trim());
  if (raw.trim() !== '' && Number.isFinite(n) && n > 0) {
    if (n <= 1) return { ok: true, value: n };
    if (n <= 100) return { ok: true, value: Math.round(n * 1e6) / 1e8 };
  }
  return { ok: false, error: `FLOCK_TARGET_ACCURACY=${shown(raw)} is not accepted: use a fraction in (0, 1] such as 0.97, or a percent in (1, 100] such as 97` };
}

/** The door's limits: each FLOCK_* variable overrides one default (README, Security). */
function doorFromEnv(env: NodeJS.ProcessEnv): DoorPolicy {
  const d = DEFAULT_DOOR_POLICY;
  const trust = parseTrustProxy(env.FLOCK_TRUST_PROXY);
  if (!trust.ok) throw new SettingError(trust.error);
  return {
    ...d,
    maxConnectionsPerIp: intIn(env, 'FLOCK_MAX_CONNECTIONS_PER_IP', 1, 100_000) ?? d.maxConnectionsPerIp,
    connectsPerMinutePerIp: intIn(env, 'FLOCK_CONNECT_RATE_PER_IP', 1, 1_000_000, ' (per minute)') ?? d.connectsPerMinutePerIp,
    eventsPerSecPerSocket: intIn(env, 'FLOCK_EVENT_RATE_PER_SOCKET', 10, 1_000_000, ' (per second)') ?? d.eventsPerSecPerSocket,
    eventsPerSecPerIp: intIn(env, 'FLOCK_EVENT_RATE_PER_IP', 10, 10_000_000, ' (per second)') ?? d.eventsPerSecPerIp,
    maxLeasesPerWorker: intIn(env, 'FLOCK_MAX_LEASES_PER_WORKER', 1, 64) ?? d.maxLeasesPerWorker,
    trustProxy: trust.value,
  };
}

/** Reads and checks every setting; nothing is started or touched. */
export function settingsFromEnv(env: NodeJS.ProcessEnv, cwd = process.cwd()): SettingsResult {
  try {
    const portRaw = env.PORT ?? '8080';
    const port = Number(portRaw);
    if (portRaw.trim() === '' || !Number.isInteger(port) || port < 0 || port > 65535) {
      throw new SettingError(`PORT=${shown(portRaw)} is not accepted: use a whole number from 0 to 65535 (0: any free port)`);
    }
    const host = env.HOST ?? '127.0.0.1';
    if (host.trim() === '' || /\s/.test(host)) throw new SettingError(`HOST=${shown(host)} is not accepted: use a host name or address of this machine, e.g. 127.0.0.1 or 0.0.0.0`);
    const dataRaw = env.FLOCK_DATA_DIR ?? './data';
    if (dataRaw.trim() === '') throw new SettingError('FLOCK_DATA_DIR is empty: name a folder (default ./data)');
    const token = env.FLOCK_ADMIN_TOKEN;
    if (token !== undefined && token !== '' && /\s/.test(token)) {
      throw new SettingError('FLOCK_ADMIN_TOKEN is not accepted: it may not contain spaces (unset it to use the token kept in the data folder)');
    }
    const demoRaw = env.FLOCK_DEMO ?? 'mnist-mlp';
    if (demoRaw !== 'none' && !(DEMO_NAMES as readonly string[]).includes(demoRaw)) {
      throw new SettingError(`FLOCK_DEMO=${shown(demoRaw)} is not accepted: use one of ${DEMO_NAMES.join(', ')} or none`);
    }
    const demoOverrides: { -readonly [K in keyof JobConfig]?: JobConfig[K] } = {};
    const epochs = intIn(env, 'FLOCK_MAX_EPOCHS', 1, 100_000);
    let target: number | undefined;
    const targetRaw = env.FLOCK_TARGET_ACCURACY;
    if (targetRaw !== undefined && targetRaw.trim() !== '') {
      const t = parseTargetAccuracy(targetRaw);
      if (!t.ok) throw new SettingError(t.error);
      target = t.value;
    }
    if (epochs !== undefined || target !== undefined) demoOverrides.stop = { maxEpochs: epochs ?? 10, targetAccuracy: target ?? null };
    const every = intIn(env, 'FLOCK_EVAL_EVERY', 1, 1_000_000, ' (versions)');
    if (every !== undefined) demoOverrides.evalEveryVersions = every;
    const timeout = intIn(env, 'FLOCK_LEASE_TIMEOUT_MS', 100, 3_600_000, ' (ms)');
    if (timeout !== undefined) demoOverrides.leaseTimeoutMs = timeout;
    const batch = intIn(env, 'FLOCK_BATCH_SIZE', 1, 65_536);
    if (batch !== undefined) demoOverrides.batchSize = batch;
    const agg = env.FLOCK_AGGREGATION;
    if (agg !== undefined && agg.trim() !== '') {
      // `async`, `buffered`, `local`, or a mode and its rule: `buffered:median`.
      const [mode, rule] = agg.trim().split(':');
      if (!(AGGREGATION_MODES as readonly string[]).includes(mode!) || (rule !== undefined && !(COMBINE_RULES as readonly string[]).includes(rule))) {
        throw new SettingError(`FLOCK_AGGREGATION=${shown(agg)} is not accepted: use ${AGGREGATION_MODES.join(', ')}, optionally with a rule (${COMBINE_RULES.join(', ')}), e.g. buffered:median`);
      }
      demoOverrides.aggregation = aggregationFor({ mode: mode as AggregationMode, ...(rule ? { rule } : {}) });
    }
    const store = oneOf(env, 'FLOCK_STORE', ['sqlite', 'memory', 'redis'] as const);
    const redisUrl = env.FLOCK_REDIS_URL?.trim() || undefined;
    if (store === 'redis' && !redisUrl) throw new SettingError('FLOCK_STORE=redis needs FLOCK_REDIS_URL, e.g. FLOCK_REDIS_URL=redis://127.0.0.1:6379');
    if (redisUrl && !/^rediss?:\/\//.test(redisUrl)) throw new SettingError(`FLOCK_REDIS_URL=${shown(redisUrl)} is not accepted: use redis://host:port (or rediss:// for TLS)`);
    const compressionRaw = env.FLOCK_COMPRESSION;
    if (compressionRaw !== undefined && compressionRaw.trim() !== '') {
      const c = parseCompression(compressionRaw);
      if (!c.ok) throw new SettingError(`FLOCK_COMPRESSION=${shown(compressionRaw)} is not accepted: ${c.error}`);
      demoOverrides.compression = c.value;
    }
    const sameAddress = parseSameAddress(env.FLOCK_SPOT_CHECK_SAME_ADDRESS);
    if (!sameAddress.ok) throw new SettingError(sameAddress.error);
    return {
      ok: true,
      settings: {
        port,
        host,
        dataDir: path.resolve(cwd, dataRaw),
        adminToken: token === '' ? undefined : token,
        demo: demoRaw === 'none' ? null : (demoRaw as DemoChoice),
        demoOverrides,
        store,
        redisUrl,
        advertiseUrl: env.FLOCK_ADVERTISE_URL?.trim() || undefined,
        redisPrefix: env.FLOCK_REDIS_PREFIX?.trim() || 'flock',
        leaderTtlMs: intIn(env, 'FLOCK_LEADER_TTL_MS', 500, 600_000, ' (ms)') ?? 3000,
        preAggregateMs: intIn(env, 'FLOCK_PREAGGREGATE_MS', 0, 10_000, ' (ms)') ?? 200,
        sqliteSync: oneOf(env, 'FLOCK_SQLITE_SYNC', ['NORMAL', 'FULL'] as const),
        drainMs: intIn(env, 'FLOCK_DRAIN_MS', 0, 600_000, ' (ms)') ?? 3000,
        checkpointPauseMs: intIn(env, 'FLOCK_FAULT_CHECKPOINT_PAUSE_MS', 0, 600_000, ' (ms)') ?? 0,
        limits: {
          maxModelBytes: intIn(env, 'FLOCK_MAX_MODEL_BYTES', 1024, 2 ** 40, ' (bytes)') ?? DEFAULT_LIMITS.maxModelBytes,
          maxDatasetBytes: intIn(env, 'FLOCK_MAX_DATASET_BYTES', 1024, 2 ** 44, ' (bytes)') ?? DEFAULT_LIMITS.maxDatasetBytes,
        },
        door: doorFromEnv(env),
        spotCheckSameAddress: sameAddress.value,
        metricsPort: intIn(env, 'FLOCK_METRICS_PORT', 0, 65_535),
        logFormat: env.FLOCK_LOG_FORMAT ? oneOf(env, 'FLOCK_LOG_FORMAT', ['json', 'pretty'] as const) : undefined,
      },
    };
  } catch (err) {
    if (err instanceof SettingError) return { ok: false, error: err.message };
    throw err;
  }
}
