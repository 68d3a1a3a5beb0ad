import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_DOOR_POLICY } from './security/limits.ts';
import { DEMO_NAMES, parseTargetAccuracy, settingsFromEnv } from './settings.ts';
import { DEMOS } from './jobs/demos.ts';

const error = (env: NodeJS.ProcessEnv): string => {
  const r = settingsFromEnv(env, '/srv');
  assert.equal(r.ok, false, `expected a refusal for ${JSON.stringify(env)}`);
  return r.ok ? '' : r.error;
};

test('defaults: port 8080 on 127.0.0.1, ./data, the MLP demo, sqlite NORMAL, drain 3 s, no same-address spot checks', () => {
  const r = settingsFromEnv({}, '/srv');
  assert.ok(r.ok);
  assert.deepEqual(r.settings, {
    port: 8080, host: '127.0.0.1', dataDir: '/srv/data', adminToken: undefined, demo: 'mnist-mlp', demoOverrides: {},
    store: 'sqlite', sqliteSync: 'NORMAL', drainMs: 3000, checkpointPauseMs: 0, metricsPort: undefined, logFormat: undefined, door: DEFAULT_DOOR_POLICY, spotCheckSameAddress: { kind: 'off' },
    limits: { maxModelBytes: 512 * 2 ** 20, maxDatasetBytes: 4 * 2 ** 30 },
    redisUrl: undefined, redisPrefix: 'flock', advertiseUrl: undefined, leaderTtlMs: 3000, preAggregateMs: 200,
  });
  assert.deepEqual([...DEMO_NAMES], [...DEMOS]);
});

test('FLOCK_STORE=redis needs a redis:// FLOCK_REDIS_URL', () => {
  const missing = settingsFromEnv({ FLOCK_STORE: 'redis' }, '/srv');
  assert.ok(!missing.ok && missing.error.includes('FLOCK_REDIS_URL'));
  const bad = settingsFromEnv({ FLOCK_STORE: 'redis', FLOCK_REDIS_URL: 'http://x' }, '/srv');
  assert.ok(!bad.ok && bad.error.includes('redis://'));
  const ok = settingsFromEnv({ FLOCK_STORE: 'redis', FLOCK_REDIS_URL: 'redis://10.0.0.5:6379', FLOCK_LEADER_TTL_MS: '2000' }, '/srv');
  assert.ok(ok.ok);
  assert.equal(ok.settings.store, 'redis');
  assert.equal(ok.settings.redisUrl, 'redis://10.0.0.5:6379');
  assert.equal(ok.settings.leaderTtlMs, 2000);
});

test('FLOCK_TARGET_ACCURACY: a fraction as is, a percent in (1, 100] divided by 100, others refused', () => {
  assert.deepEqual(parseTargetAccuracy('0.97'), { ok: true, value: 0.97 });
  assert.deepEqual(parseTargetAccuracy('1'), { ok: true, value: 1 });
  assert.deepEqual(parseTargetAccuracy('97'), { ok: true, value: 0.97 });
  assert.deepEqual(parseTargetAccuracy('98.5'), { ok: true, value: 0.985 });
  assert.deepEqual(parseTargetAccuracy('100'), { ok: true, value: 1 });
  for (const bad of ['970', '0', '-0.5', 'high', '100.1', 'NaN']) assert.equal(parseTargetAccuracy(bad).ok, false, bad);
  const r = settingsFromEnv({ FLOCK_TARGET_ACCURACY: '97', FLOCK_MAX_EPOCHS: '3' });
  assert.ok(r.ok);
  assert.deepEqual(r.settings.demoOverrides.stop, { maxEpochs: 3, targetAccuracy: 0.97 });
  assert.equal(error({ FLOCK_TARGET_ACCURACY: '970' }), 'FLOCK_TARGET_ACCURACY="970" is not accepted: use a fraction in (0, 1] such as 0.97, or a percent in (1, 100] such as 97');
});

test('every refused setting is one line naming the variable, the value and the accepted range', () => {
  const cases: [NodeJS.ProcessEnv, RegExp][] = [
    [{ PORT: '99999' }, /^PORT="99999" is not accepted: use a whole number from 0 to 65535/],
    [{ PORT: 'http' }, /^PORT="http"/],
    [{ HOST: '' }, /^HOST="" is not accepted/],
    [{ FLOCK_DEMO: 'mnist' }, /^FLOCK_DEMO="mnist" is not accepted: use one of mnist-mlp, mnist-cnn, mnist-mlp-large or none$/],
    [{ FLOCK_MAX_EPOCHS: '0' }, /^FLOCK_MAX_EPOCHS="0" is not accepted: use a whole number from 1 to 100,000$/],
    [{ FLOCK_BATCH_SIZE: '12.5' }, /^FLOCK_BATCH_SIZE="12.5" is not accepted: use a whole number from 1 to 65,536$/],
    [{ FLOCK_COMPRESSION: 'gradients=topk:5' }, /^FLOCK_COMPRESSION="gradients=topk:5" is not accepted: gradients=topk:5: a ratio in \(0, 1\] goes with topk only, e.g. topk:0.01$/],
    [{ FLOCK_LOG_FORMAT: 'xml' }, /^FLOCK_LOG_FORMAT="xml" is not accepted: use one of json, pretty$/],
    [{ FLOCK_EVAL_EVERY: '-1' }, /^FLOCK_EVAL_EVERY="-1" .* from 1 to 1,000,000 \(versions\)$/],
    [{ FLOCK_LEASE_TIMEOUT_MS: '5' }, /^FLOCK_LEASE_TIMEOUT_MS="5" .* from 100 to 3,600,000 \(ms\)$/],
    [{ FLOCK_STORE: 'redis2' }, /^FLOCK_STORE="redis2" is not accepted: use one of sqlite, memory, redis$/],
    [{ FLOCK_STORE: 'redis' }, /^FLOCK_STORE=redis needs FLOCK_REDIS_URL/],
    [{ FLOCK_LEADER_TTL_MS: '10' }, /^FLOCK_LEADER_TTL_MS="10" .* from 500 to 600,000 \(ms\)$/],
    [{ FLOCK_SQLITE_SYNC: 'full' }, /^FLOCK_SQLITE_SYNC="full" is not accepted: use one of NORMAL, FULL$/],
    [{ FLOCK_DRAIN_MS: 'soon' }, /^FLOCK_DRAIN_MS="soon"/],
    [{ FLOCK_ADMIN_TOKEN: 'two words' }, /^FLOCK_ADMIN_TOKEN is not accepted/],
    [{ FLOCK_MAX_MODEL_BYTES: '10MB' }, /^FLOCK_MAX_MODEL_BYTES="10MB" is not accepted: use a whole number from 1,024 to .* \(bytes\)$/],
    [{ FLOCK_MAX_DATASET_BYTES: '0' }, /^FLOCK_MAX_DATASET_BYTES="0" is not accepted/],
  ];
  for (const [env, re] of cases) {
    const e = error(env);
    assert.match(e, re);
    assert.ok(!e.includes('\n'), e);
  }
});

test('demo overrides and the rest are typed numbers', () => {
  const r = settingsFromEnv({ PORT: '0', FLOCK_DEMO: 'none', FLOCK_BATCH_SIZE: '64', FLOCK_EVAL_EVERY: '10', FLOCK_LEASE_TIMEOUT_MS: '5000', FLOCK_STORE: 'memory', FLOCK_DRAIN_MS: '0', FLOCK_ADMIN_TOKEN: 'abc' }, '/srv');
  assert.ok(r.ok);
  assert.equal(r.settings.port, 0);
  assert.equal(r.settings.demo, null);
  assert.equal(r.settings.adminToken, 'abc');
  assert.deepEqual(r.settings.demoOverrides, { batchSize: 64, evalEveryVersions: 10, leaseTimeoutMs: 5000 });
  assert.equal(r.settings.store, 'memory');
  assert.equal(r.settings.drainMs, 0);
});

test('door limits: FLOCK_MAX_CONNECTIONS_PER_IP, FLOCK_TRUST_PROXY (1 or a list of addresses) and the rates, each checked', () => {
  const r = settingsFromEnv({ FLOCK_MAX_CONNECTIONS_PER_IP: '200', FLOCK_TRUST_PROXY: '1', FLOCK_EVENT_RATE_PER_SOCKET: '50', FLOCK_MAX_LEASES_PER_WORKER: '1' });
  assert.ok(r.ok);
  assert.equal(r.settings.door.maxConnectionsPerIp, 200);
  assert.deepEqual(r.settings.door.trustProxy, { kind: 'loopback' });
  assert.equal(r.settings.door.eventsPerSecPerSocket, 50);
  assert.equal(r.settings.door.maxLeasesPerWorker, 1);
  const list = settingsFromEnv({ FLOCK_TRUST_PROXY: '10.0.0.2, ::ffff:10.0.0.3' });
  assert.ok(list.ok);
  assert.deepEqual(list.settings.door.trustProxy, { kind: 'list', proxies: ['10.0.0.2', '10.0.0.3'] });
  assert.equal(error({ FLOCK_MAX_CONNECTIONS_PER_IP: '0' }), 'FLOCK_MAX_CONNECTIONS_PER_IP="0" is not accepted: use a whole number from 1 to 100,000');
  assert.match(error({ FLOCK_TRUST_PROXY: 'yes please' }) ?? '', /^FLOCK_TRUST_PROXY="yes please" is not accepted: use 0 \(no proxy\), 1/);
});

test('FLOCK_SPOT_CHECK_SAME_ADDRESS: off unless set; 1 for any address, or a list of addresses; anything else is one line', () => {
  for (const off of [undefined, '', '0', 'false']) {
    const r = settingsFromEnv(off === undefined ? {} : { FLOCK_SPOT_CHECK_SAME_ADDRESS: off });
    assert.ok(r.ok);
    assert.deepEqual(r.settings.spotCheckSameAddress, { kind: 'off' }, String(off));
  }
  const any = settingsFromEnv({ FLOCK_SPOT_CHECK_SAME_ADDRESS: '1' });
  assert.ok(any.ok);
  assert.deepEqual(any.settings.spotCheckSameAddress, { kind: 'any' });
  const list = settingsFromEnv({ FLOCK_SPOT_CHECK_SAME_ADDRESS: '203.0.113.7, ::ffff:198.51.100.2' });
  assert.ok(list.ok);
  assert.deepEqual(list.settings.spotCheckSameAddress, { kind: 'list', addresses: ['203.0.113.7', '198.51.100.2'] });
  for (const bad of ['yes', '2', '203.0.113.300', 'lab.example.org']) {
    const e = error({ FLOCK_SPOT_CHECK_SAME_ADDRESS: bad });
    assert.match(e, /^FLOCK_SPOT_CHECK_SAME_ADDRESS=".*" is not accepted: use 0 \(replicas only at another address\), 1 \(also at the same address\) or a comma-separated list of the IP addresses/);
    assert.ok(!e.includes('\n'), e);
  }
});
