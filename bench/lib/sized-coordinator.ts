// A coordinator child for benchmarks: the MNIST MLP demo with its hidden layer(s) resized so the
// model has about the asked number of parameters; prints `READY <url> <token>` once listening.
// Usage: tsx bench/lib/sized-coordinator.ts <params> <dataDir> [compression]

import { startCoordinator } from '../../server/coordinator.ts';
import { tf } from '../../shared/training/tf.ts';
import { initNodeBackend } from '../../shared/training/node-backend.ts';
import { parseCompression } from '../../shared/codec/compression.ts';
import path from 'node:path';

const [paramsArg, dataDir, compressionArg] = process.argv.slice(2);
const target = Number(paramsArg);
await initNodeBackend('wasm');
// 784 -> h -> 10 has 795h + 10 parameters.
const hidden = Math.max(1, Math.round((target - 10) / 795));
const model = tf.sequential({
  layers: [
    tf.layers.flatten({ inputShape: [28, 28, 1], name: 'flatten' }),
    tf.layers.dense({ units: hidden, activation: 'relu', name: 'hidden' }),
    tf.layers.dense({ units: 10, activation: 'softmax', name: 'output' }),
  ],
});
const modelTopology = model.toJSON(null, false) as unknown as Record<string, unknown>;
model.dispose();
const compression = compressionArg ? parseCompression(compressionArg) : null;
if (compression && !compression.ok) throw new Error(compression.error);
const c = await startCoordinator({
  port: 0,
  host: '127.0.0.1',
  dataDir: dataDir!,
  clientDir: path.join(dataDir!, 'none'),
  demo: 'mnist-mlp',
  demoOverrides: {
    modelTopology,
    batchSize: 32,
    stop: { maxEpochs: 1000, targetAccuracy: null },
    // Evaluation is not what is measured here: rare.
    evalEveryVersions: 1_000_000,
    staleness: { rule: 'inverse-sqrt', maxStaleness: 100_000 },
    ...(compression?.ok ? { compression: compression.value } : {}),
  },
  log: { info() {}, warn: (m) => console.error(m) },
  maxMessageBytes: 256 * 1024 * 1024,
  // Every simulated client connects from 127.0.0.1: the per-address limits (which would stop a
  // flood from one address at 16 connections and 800 events/s) are opened, since the ingest path,
  // not the door, is what this measures.
  door: { maxConnectionsPerIp: 100_000, connectsPerMinutePerIp: 1_000_000, eventsPerSecPerIp: 10_000_000, eventsPerSecPerSocket: 1_000_000 },
});
console.log(`READY ${c.url} ${c.adminToken} ${795 * hidden + 10}`);
process.on('SIGTERM', () => void c.close().then(() => process.exit(0)));
