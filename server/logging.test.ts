import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { createLogger } from './logging.ts';

function capture(): { stream: PassThrough; lines: () => string[] } {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (b: Buffer) => (text += b.toString()));
  return { stream, lines: () => text.split('\n').filter(Boolean) };
}

test('json: one object per line with level, time, msg and the given fields', async () => {
  const out = capture();
  const log = createLogger({ format: 'json', destination: out.stream });
  log.info('job mnist-mlp: checkpoint v3 saved', { job: 'mnist-mlp', version: 3 });
  log.warn('evaluation failed');
  await new Promise((r) => setImmediate(r));
  const [a, b] = out.lines().map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(a!.level, 30);
  assert.equal(a!.msg, 'job mnist-mlp: checkpoint v3 saved');
  assert.equal(a!.job, 'mnist-mlp');
  assert.equal(a!.version, 3);
  assert.equal(typeof a!.time, 'number');
  assert.equal(b!.level, 40);
  assert.equal(out.lines().length, 2);
});

test('pretty: readable lines, no JSON braces, level name and message', async () => {
  const out = capture();
  const log = createLogger({ format: 'pretty', destination: out.stream });
  log.info('created demo job mnist-mlp', { job: 'mnist-mlp' });
  await new Promise((r) => setTimeout(r, 20));
  const text = out.lines().join('\n');
  assert.match(text, /INFO.*created demo job mnist-mlp/);
  assert.ok(!text.startsWith('{'), text);
});
