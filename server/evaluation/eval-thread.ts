// Entry of the evaluation worker thread: its own tfjs (WASM) and its own copy of the model and of
// the test rows, so a test pass never holds the coordinator's event loop (pushes go on meanwhile).
// Messages: { kind: 'init', topology, spec, x, y, count } once, then { kind: 'eval', id, version,
// specs, weights } -> { id, ok: true, result } or { id, ok: false, message }.

import { parentPort } from 'node:worker_threads';
import { Evaluator } from './evaluator.ts';
import { initNodeBackend } from '../../shared/training/node-backend.ts';
import type { StepSpec } from '../../shared/training/gradient-step.ts';
import type { TensorSpec } from '../../shared/codec/tensor-codec.ts';
import type { JobData, Rows } from '../data/job-data.ts';
import { featureRowBytes, targetRowBytes } from '../../shared/data/data-spec.ts';

type Init = { kind: 'init'; topology: unknown; spec: StepSpec; x: Uint8Array; y: Uint8Array; count: number };
type Eval = { kind: 'eval'; id: number; version: number; specs: TensorSpec[]; weights: Float32Array };

let evaluator: Evaluator | null = null;
const port = parentPort!;
const ready = initNodeBackend('wasm');

port.on('message', (m: Init | Eval) => {
  void (async () => {
    if (m.kind === 'init') {
      const xr = featureRowBytes(m.spec.data);
      const yr = targetRowBytes(m.spec.data.target);
      const test: JobData = {
        spec: m.spec.data,
        count: (s) => (s === 'test' ? m.count : 0),
        gather: () => {
          throw new Error('the evaluation thread holds test rows only');
        },
        read: (_s, start, end): Rows => ({ x: m.x.subarray(start * xr, end * xr), y: m.y.subarray(start * yr, end * yr), count: end - start }),
        close() {},
      };
      evaluator = new Evaluator(m.topology, m.spec, test);
      return;
    }
    try {
      await ready;
      if (!evaluator) throw new Error('evaluation thread not initialised');
      const result = await evaluator.evaluate(m.version, m.specs, m.weights, () => Date.now());
      port.postMessage({ id: m.id, ok: true, result });
    } catch (err) {
      port.postMessage({ id: m.id, ok: false, message: (err as Error).message });
    }
  })();
});
