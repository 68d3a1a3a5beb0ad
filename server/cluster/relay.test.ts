// The relay between two processes' socket.io servers on one Redis: a worker connected to A is served
// by handlers on the owner B; when ownership moves to A its session is replayed (hello, job choice)
// before the request; a lease's weights come from A's cache when the owner says they are current.
// A gateway whose heartbeat runs out without a `bye` (a SIGKILL) has its sessions ended on the owner.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server } from 'socket.io';
import { io as connect } from 'socket.io-client';
import { Redis } from 'ioredis';
import { Relay, helloToReplay, type VirtualSocket } from './relay.ts';
import { aliveAmong, heartbeatKey } from './heartbeat.ts';
import { encodeVector } from '../../shared/codec/compression.ts';
import { redisPerFile } from '../storage/testing/redis-server.ts';

const { skip, server } = redisPerFile();

test('relay: forwarding, session replay after an owner change, weights from the gateway cache', { skip, timeout: 20_000 }, async () => {
  const conns: Redis[] = [];
  const conn = (): Redis => {
    const r = new Redis(server().url);
    conns.push(r);
    return r;
  };
  let leader = 'B';
  const servers: Server[] = [];
  const relays: Relay[] = [];
  for (const id of ['A', 'B']) {
    const http = createServer();
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', () => r()));
    const io = new Server(http);
    servers.push(io);
    const relay = new Relay({ processId: id, prefix: 'rt', pub: conn(), sub: conn(), leader: () => leader, timeoutMs: 2000 });
    await relay.start(io);
    relays.push(relay);
  }
  const seen: string[] = [];
  const weights = { version: 7, specs: [], data: new Uint8Array([1, 2, 3]) };
  const handlers = (who: string) => (s: VirtualSocket) => {
    s.on('worker:hello', (_raw: unknown, ack: unknown) => {
      seen.push(`${who}:hello`);
      (ack as (r: unknown) => void)({ ok: true, workerId: 'w1', serverTime: 0 });
    });
    s.on('job:get', (_raw: unknown, ack: unknown) => {
      seen.push(`${who}:job`);
      (ack as (r: unknown) => void)({ ok: true, job: { id: 'j' } });
    });
    s.on('lease:request', (raw: unknown, ack: unknown) => {
      const cached = (raw as { cachedVersion: number | null }).cachedVersion;
      seen.push(`${who}:lease(${cached})`);
      (ack as (r: unknown) => void)({ ok: true, lease: { leaseId: `l${seen.length}`, jobId: 'j', baseVersion: 7 }, weights: cached === 7 ? null : weights });
    });
  };
  relays[1]!.setConnectionHandler('/', handlers('B'));
  const port = ((servers[0]!.httpServer as unknown as { address(): AddressInfo }).address()).port;
  const client = connect(`http://127.0.0.1:${port}`, { transports: ['websocket'] });
  const ask = (ev: string, body: unknown): Promise<{ ok: boolean; weights?: { version: number; data: Uint8Array } | null }> =>
    client.timeout(3000).emitWithAck(ev as never, body as never) as never;

  assert.equal((await ask('worker:hello', { protocol: 1 })).ok, true);
  assert.equal((await ask('job:get', {})).ok, true);
  const first = await ask('lease:request', { cachedVersion: null });
  assert.equal(first.weights?.version, 7, 'weights from the owner');
  // A second worker-held-nothing request: the gateway says "v7" (its cache) and serves the weights itself.
  const second = await ask('lease:request', { cachedVersion: null });
  assert.equal(second.weights?.version, 7);
  assert.deepEqual([...new Uint8Array(second.weights!.data)], [1, 2, 3]);
  assert.equal(relays[0]!.stats.weightsFromCache, 1);

  // Ownership moves to A (B is gone): the session is replayed there before the request.
  leader = 'A';
  relays[0]!.setConnectionHandler('/', handlers('A'));
  relays[0]!.leaderChanged();
  assert.equal((await ask('lease:request', { cachedVersion: 7 })).ok, true);
  assert.deepEqual(seen, ['B:hello', 'B:job', 'B:lease(null)', 'B:lease(7)', 'A:hello', 'A:job', 'A:lease(7)']);

  client.close();
  for (const s of servers) s.close();
  for (const c of conns) c.disconnect();
});

test('relay: int8 weight deltas are applied to the gateway cache, never served as whole weights; the client address reaches the owner', { skip, timeout: 20_000 }, async () => {
  const conns: Redis[] = [];
  const conn = (): Redis => {
    const r = new Redis(server().url);
    conns.push(r);
    return r;
  };
  const servers: Server[] = [];
  const relays: Relay[] = [];
  for (const id of ['A', 'B']) {
    const http = createServer();
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', () => r()));
    const io = new Server(http);
    // What the door does on every real socket (server/security/door.ts).
    io.use((s, next) => {
      s.data.address = '127.0.0.1';
      next();
    });
    servers.push(io);
    const relay = new Relay({ processId: id, prefix: 'rd', pub: conn(), sub: conn(), leader: () => 'B', timeoutMs: 2000 });
    await relay.start(io);
    relays.push(relay);
  }
  const specs = [{ name: 'w', shape: [2], dtype: 'float32' as const }];
  const whole7 = { version: 7, specs, data: new Uint8Array(new Float32Array([1, 2]).buffer) };
  // The owner's delta from v7 to v8 (+0.5, -0.5), as server/aggregation/wire.ts encodes it.
  const delta78 = { version: 8, specs, data: encodeVector('int8', new Float32Array([0.5, -0.5]), [2]), encoding: 'int8' as const, deltaFrom: 7 };
  let version = 7;
  const addresses: unknown[] = [];
  relays[1]!.setConnectionHandler('/', (s: VirtualSocket) => {
    addresses.push(s.data.address);
    s.on('worker:hello', (_raw: unknown, ack: unknown) => (ack as (r: unknown) => void)({ ok: true, workerId: 'w1', serverTime: 0 }));
    s.on('lease:request', (raw: unknown, ack: unknown) => {
      const cached = (raw as { cachedVersion: number | null }).cachedVersion;
      const weights = cached === version ? null : version === 7 ? whole7 : cached === 7 ? delta78 : null;
      (ack as (r: unknown) => void)({ ok: true, lease: { leaseId: `l${Math.random()}`, jobId: 'j', baseVersion: version }, weights });
    });
  });
  const port = ((servers[0]!.httpServer as unknown as { address(): AddressInfo }).address()).port;
  const client = connect(`http://127.0.0.1:${port}`, { transports: ['websocket'] });
  type Ack = { ok: boolean; weights?: { version: number; data: Uint8Array; deltaFrom?: number } | null };
  const ask = (ev: string, body: unknown): Promise<Ack> => client.timeout(3000).emitWithAck(ev as never, body as never) as never;

  assert.equal((await ask('worker:hello', { protocol: 1 })).ok, true);
  assert.deepEqual(addresses, ['127.0.0.1'], 'the owner sees the client address the gateway door saw');
  assert.equal((await ask('lease:request', { cachedVersion: null })).weights?.version, 7);
  version = 8;
  // A worker holding v7 gets the owner's delta from v7 as it is: it applies it itself.
  const own = await ask('lease:request', { cachedVersion: 7 });
  assert.equal(own.weights?.deltaFrom, 7);
  // A worker holding nothing: the gateway claims its cached v7, gets the delta and serves whole v8.
  const fresh = await ask('lease:request', { cachedVersion: null });
  assert.equal(fresh.weights?.version, 8);
  assert.equal(fresh.weights?.deltaFrom, undefined, 'never a delta to a worker that does not hold its base');
  const got = new Float32Array(new Uint8Array(fresh.weights!.data).slice().buffer);
  assert.ok(Math.abs(got[0]! - 1.5) < 0.01 && Math.abs(got[1]! - 1.5) < 0.01, `v8 = v7 + delta (${[...got]})`);
  // ...and from then on the cache holds whole v8.
  const again = await ask('lease:request', { cachedVersion: null });
  assert.equal(again.weights?.version, 8);
  assert.equal(again.weights?.deltaFrom, undefined);
  assert.equal(relays[0]!.stats.weightsFromCache, 1);

  client.close();
  for (const s of servers) s.close();
  for (const c of conns) c.disconnect();
});

test('relay: a gateway whose heartbeat runs out (no bye) has its sessions ended on the owner; back on Redis, its worker is replayed under the id it was issued', { skip, timeout: 20_000 }, async () => {
  const conns: Redis[] = [];
  const conn = (): Redis => {
    const r = new Redis(server().url);
    conns.push(r);
    return r;
  };
  const ttlMs = 600;
  const everyMs = 300;
  const servers: Server[] = [];
  const relays: Relay[] = [];
  const logs: string[] = [];
  const r = conn();
  // A (gateway) beats once, as a process killed right after its last renewal; B (owner) beats too.
  const beat = (pid: string): Promise<unknown> => r.set(heartbeatKey('rl', pid), String(Date.now()), 'PX', ttlMs);
  await beat('A');
  await beat('B');
  // Redis answers the heartbeat lookups, unless the test says it does not.
  let redisAnswers = true;
  for (const id of ['A', 'B']) {
    const http = createServer();
    await new Promise<void>((res) => http.listen(0, '127.0.0.1', () => res()));
    const io = new Server(http);
    servers.push(io);
    const pub = conn();
    const relay = new Relay({
      processId: id, prefix: 'rl', pub, sub: conn(), leader: () => 'B', timeoutMs: 2000,
      liveness: { alive: (ids) => (redisAnswers ? aliveAmong(pub, 'rl', ids) : Promise.reject(new Error('connection lost'))), everyMs, ttlMs },
      log: (m) => logs.push(m),
    });
    await relay.start(io);
    relays.push(relay);
  }
  const owner = relays[1]!;
  const keepOwnerAlive = setInterval(() => void beat('B'), ttlMs / 3);
  const events: string[] = [];
  let issued = 0;
  owner.setConnectionHandler('/', (s: VirtualSocket) => {
    s.on('worker:hello', (raw: unknown, ack: unknown) => {
      const h = raw as { workerId?: string; credential?: string };
      events.push(`hello(${h.workerId ?? '-'},${h.credential ?? '-'})`);
      // As the guard does: the claimed id with its credential, else a new one with a credential.
      const id = h.credential === `cred-${h.workerId}` ? h.workerId! : `w${++issued}`;
      s.data.workerId = id;
      (ack as (r: unknown) => void)({ ok: true, workerId: id, serverTime: 0, credential: `cred-${id}` });
    });
    s.on('lease:request', (_raw: unknown, ack: unknown) => (ack as (r: unknown) => void)({ ok: false, code: 'TOO_MANY_LEASES', message: 'test', retryAfterMs: 100 }));
    s.on('disconnect', (reason: unknown) => events.push(`disconnect(${String(s.data.workerId)},${String(reason)})`));
  });
  const port = ((servers[0]!.httpServer as unknown as { address(): AddressInfo }).address()).port;
  const client = connect(`http://127.0.0.1:${port}`, { transports: ['websocket'] });
  const ask = (ev: string, body: unknown): Promise<{ ok: boolean; workerId?: string }> => client.timeout(3000).emitWithAck(ev as never, body as never) as never;
  try {
    const hello = await ask('worker:hello', { protocol: 1, workerId: 'self-chosen' });
    assert.equal(hello.workerId, 'w1');
    const lastBeat = Date.now();
    assert.equal(owner.virtual.size, 1);
    assert.deepEqual(owner.gatewaysServed(), ['A']);

    // A stops beating (no bye: its socket is still connected, as if A froze or lost Redis).
    const since = Date.now();
    while (owner.virtual.size > 0) {
      assert.ok(Date.now() - since < ttlMs + everyMs + 1500, 'the session ended within ttl + check interval (+ slack)');
      await new Promise((res) => setTimeout(res, 20));
    }
    const endedAfter = Date.now() - lastBeat;
    console.log(`gateway heartbeat ran out: its session ended ${endedAfter} ms after its last beat (ttl ${ttlMs} ms, checked every ${everyMs} ms)`);
    assert.ok(endedAfter >= ttlMs - 50, `not before the key ran out (${endedAfter} ms)`);
    assert.deepEqual(events, ['hello(self-chosen,-)', 'disconnect(w1,ping timeout)'], 'the disconnect handler ran, as for a bye');
    assert.equal(logs.filter((l) => l.includes('gateway A is gone (no heartbeat for 600 ms); 1 session(s) ended, their leases reissued')).length, 1, logs.join('\n'));
    assert.equal(client.connected, true, 'the real socket on the gateway is untouched');

    // A is back on Redis: its next request finds no session and replays the hello, as the worker
    // would say it now (with the id and credential it was issued), so it is the same worker.
    await beat('A');
    const renew = setInterval(() => void beat('A'), ttlMs / 3);
    try {
      const lease = await ask('lease:request', { cachedVersion: null });
      assert.equal(lease.ok, false);
      assert.deepEqual(events.slice(2), ['hello(w1,cred-w1)']);
      assert.equal(owner.virtual.size, 1);
      await new Promise((res) => setTimeout(res, ttlMs + everyMs * 2));
      assert.equal(owner.virtual.size, 1, 'a gateway that beats keeps its sessions');
    } finally {
      clearInterval(renew);
    }

    // When the owner cannot ask Redis, it cannot tell who is gone: nothing ends.
    redisAnswers = false;
    await new Promise((res) => setTimeout(res, ttlMs + everyMs * 2));
    assert.equal(await owner.checkGateways(), 0);
    assert.equal(owner.virtual.size, 1, 'no session ended on a failed lookup');
    assert.ok(logs.some((l) => l.includes("cannot check the gateways' heartbeats (connection lost); none ended")));
    // A process that does not lead checks nothing.
    assert.equal(await relays[0]!.checkGateways(), 0);
    redisAnswers = true;
    const back = Date.now();
    while (owner.virtual.size > 0) {
      assert.ok(Date.now() - back < everyMs + 1500, 'ended at the next check once Redis answers');
      await new Promise((res) => setTimeout(res, 20));
    }
  } finally {
    clearInterval(keepOwnerAlive);
    client.close();
    for (const relay of relays) relay.close();
    for (const s of servers) s.close();
    for (const c of conns) c.disconnect();
  }
});

test('relay: the replayed hello carries the id and credential the owner issued', () => {
  assert.deepEqual(helloToReplay({ protocol: 1, workerId: 'mine' }, { ok: true, workerId: 'w-9', credential: 'c9' }), { protocol: 1, workerId: 'w-9', credential: 'c9' });
  const raw = { protocol: 1, workerId: 'mine' };
  assert.equal(helloToReplay(raw, { ok: false, code: 'INTERNAL' }), raw, 'a refused hello changes nothing');
  assert.equal(helloToReplay(raw, { ok: true, workerId: 'w-9' }), raw, 'no credential issued: the worker keeps its own id');
  assert.equal(helloToReplay('junk', { ok: true, workerId: 'w-9', credential: 'c9' }), 'junk');
});

test('relay: a socket that connects while the relay is starting is heard, and answered once the relay is ready', { skip, timeout: 20_000 }, async () => {
  const conns: Redis[] = [];
  const conn = (): Redis => {
    const r = new Redis(server().url);
    conns.push(r);
    return r;
  };
  const http = createServer();
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', () => r()));
  // socket.io accepts sockets from here on (a restarted coordinator binds its port first).
  const io = new Server(http);
  const relay = new Relay({ processId: 'S', prefix: 'rs', pub: conn(), sub: conn(), leader: () => 'S', timeoutMs: 2000 });
  relay.setConnectionHandler('/', (s: VirtualSocket) => {
    s.on('worker:hello', (_raw: unknown, ack: unknown) => (ack as (r: unknown) => void)({ ok: true, workerId: 'w1', serverTime: 0 }));
  });
  let alive!: () => void;
  const started = relay.start(io, new Promise<void>((r) => (alive = r)));
  const port = (http.address() as AddressInfo).port;
  const client = connect(`http://127.0.0.1:${port}`, { transports: ['websocket'] });
  try {
    await new Promise<void>((r) => client.once('connect', () => r()));
    const answer = client.timeout(5000).emitWithAck('worker:hello' as never, { protocol: 1 } as never) as Promise<{ ok: boolean }>;
    let answered = false;
    void answer.then(() => (answered = true));
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(answered, false, 'nothing is forwarded before the process is alive in Redis');
    alive();
    await started;
    assert.equal((await answer).ok, true, 'the request made while starting is answered');
  } finally {
    client.close();
    relay.close();
    io.close();
    for (const c of conns) c.disconnect();
  }
});
