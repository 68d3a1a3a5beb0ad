// Process heartbeats (heartbeat.ts): the key lives while the process renews it, goes at once on a
// graceful stop, runs out by itself when renewals stop; which gateways count as gone is pure.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { Heartbeat, aliveAmong, goneGateways, heartbeatKey } from './heartbeat.ts';
import { redisPerFile } from '../storage/testing/redis-server.ts';

const { skip, server } = redisPerFile();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('goneGateways: those with sessions, not this process, without a heartbeat; each once', () => {
  assert.deepEqual(goneGateways(['A', 'B', 'C', 'A'], new Set(['B']), 'C'), ['A']);
  assert.deepEqual(goneGateways(['A', 'B'], new Set(['A', 'B']), 'C'), []);
  assert.deepEqual(goneGateways([], new Set(), 'C'), []);
  assert.deepEqual(goneGateways(['C'], new Set(), 'C'), [], 'never this process itself');
});

test('heartbeat: renewed while running, deleted on stop, runs out without renewals', { skip, timeout: 10_000 }, async () => {
  const r = new Redis(server().url);
  try {
    const hb = new Heartbeat({ redis: r, prefix: 'hb', processId: 'P1', ttlMs: 300 });
    await hb.start();
    assert.deepEqual([...(await aliveAmong(r, 'hb', ['P1', 'P2']))], ['P1'], 'alive from start() on');
    await sleep(700);
    assert.ok((await r.pttl(heartbeatKey('hb', 'P1'))) > 0, 'renewed past its TTL');
    await hb.stop();
    assert.equal(await r.exists(heartbeatKey('hb', 'P1')), 0, 'gone at once on a graceful stop');
    // A process that died after its last renewal: the key runs out by itself.
    await r.set(heartbeatKey('hb', 'P2'), '1', 'PX', 200);
    assert.equal((await aliveAmong(r, 'hb', ['P2'])).size, 1);
    await sleep(300);
    assert.equal((await aliveAmong(r, 'hb', ['P2'])).size, 0);
    assert.equal((await aliveAmong(r, 'hb', [])).size, 0);
  } finally {
    r.disconnect();
  }
});
