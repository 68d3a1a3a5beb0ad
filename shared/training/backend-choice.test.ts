// The pure backend choice: probe order per adapter, the budget split, and the pick from figures
// (fastest wins; software WebGPU only when it clearly wins; timeouts and failures; nothing works).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AdapterInfo } from '../protocol/messages.ts';
import {
  decideBackend, GPU_SLICE_MS, MIN_SLICE_MS, probePlan, sliceMs, SOFTWARE_GPU_MARGIN, type ProbeOutcome,
} from './backend-choice.ts';

const swiftshader: AdapterInfo = { vendor: 'google', architecture: 'swiftshader', description: '', isFallbackAdapter: true };
const realGpu: AdapterInfo = { vendor: 'nvidia', architecture: 'ampere', description: '', isFallbackAdapter: false };

const ok = (backend: ProbeOutcome['backend'], samplesPerSec: number, software = false): ProbeOutcome =>
  ({ backend, software, status: 'ok', samplesPerSec, warmupMs: 100, steps: 5 });
const timeout = (backend: ProbeOutcome['backend'], bound: number, software = false): ProbeOutcome =>
  ({ backend, software, status: 'timeout', samplesPerSec: bound, warmupMs: 900, steps: 0 });
const failed = (backend: ProbeOutcome['backend'], error: string): ProbeOutcome =>
  ({ backend, software: false, status: 'failed', samplesPerSec: 0, warmupMs: 5, steps: 0, error });

test('probe plan: real GPU first, software GPU last, none without an adapter, only the forced one', () => {
  const names = (a: AdapterInfo | null, f: 'webgpu' | 'wasm' | null = null) => probePlan(a, f).map((c) => `${c.backend}${c.software ? '(sw)' : ''}`);
  assert.deepEqual(names(realGpu), ['webgpu', 'wasm', 'cpu']);
  assert.deepEqual(names(swiftshader), ['wasm', 'cpu', 'webgpu(sw)']);
  assert.deepEqual(names(null), ['wasm', 'cpu']);
  assert.deepEqual(names(swiftshader, 'webgpu'), ['webgpu(sw)']);
  assert.deepEqual(names(realGpu, 'wasm'), ['wasm']);
});

test('budget slices: even shares, a floor, and a real GPU gets time to compile its shaders', () => {
  assert.equal(sliceMs(2000, 4, { backend: 'wasm', software: false }), 500);
  assert.equal(sliceMs(100, 2, { backend: 'cpu', software: false }), MIN_SLICE_MS);
  assert.equal(sliceMs(2000, 3, { backend: 'webgpu', software: false }), GPU_SLICE_MS);
  assert.equal(sliceMs(600, 1, { backend: 'webgpu', software: true }), 600);
});

test('this machine: WASM beats software WebGPU (measured or timed out)', () => {
  const measured = decideBackend([ok('wasm', 1800), ok('cpu', 160), ok('webgpu', 31, true)]);
  assert.ok(measured.ok);
  assert.equal(measured.backend, 'wasm');
  assert.match(measured.reason, /WASM measured fastest/);
  assert.match(measured.reason, /WebGPU \(software\) 31/);
  const timedOut = decideBackend([ok('wasm', 1800), ok('cpu', 160), timeout('webgpu', 29, true)]);
  assert.ok(timedOut.ok && timedOut.backend === 'wasm');
});

test('a real GPU that measures fastest is kept; one that measures slower is not', () => {
  const fast = decideBackend([ok('webgpu', 9000), ok('wasm', 1800), ok('cpu', 160)]);
  assert.ok(fast.ok && fast.backend === 'webgpu' && !fast.software);
  const slow = decideBackend([ok('webgpu', 900), ok('wasm', 1800), ok('cpu', 160)]);
  assert.ok(slow.ok && slow.backend === 'wasm');
});

test('software WebGPU must win by the margin', () => {
  const barely = decideBackend([ok('wasm', 1000), ok('webgpu', 1000 * SOFTWARE_GPU_MARGIN * 0.99, true)]);
  assert.ok(barely.ok && barely.backend === 'wasm');
  const clearly = decideBackend([ok('wasm', 1000), ok('webgpu', 1000 * SOFTWARE_GPU_MARGIN * 1.5, true)]);
  assert.ok(clearly.ok && clearly.backend === 'webgpu' && clearly.software);
});

test('ties go to plan order; a timeout never beats a measurement', () => {
  const tie = decideBackend([ok('wasm', 500), ok('cpu', 500)]);
  assert.ok(tie.ok && tie.backend === 'wasm');
  const bound = decideBackend([timeout('webgpu', 5000), ok('wasm', 400)]);
  assert.ok(bound.ok && bound.backend === 'wasm');
});

test('a missing kernel on one backend: the others are measured and kept', () => {
  const d = decideBackend([failed('wasm', "Kernel 'Conv2DBackpropFilter' not registered for backend 'wasm'"), ok('cpu', 70), timeout('webgpu', 20, true)]);
  assert.ok(d.ok && d.backend === 'cpu');
  assert.match(d.reason, /WASM failed \(Kernel 'Conv2DBackpropFilter'/);
});

test('only timeouts: the first in plan order is used; everything failed: unsupported, with every reason', () => {
  const slow = decideBackend([failed('wasm', 'x'), timeout('cpu', 3)]);
  assert.ok(slow.ok && slow.backend === 'cpu');
  assert.match(slow.reason, /no backend finished a step/);
  const none = decideBackend([failed('wasm', 'non-finite gradients on a probe step'), failed('cpu', 'non-finite gradients on a probe step')]);
  assert.equal(none.ok, false);
  assert.match(none.reason, /no backend can train this model here: WASM failed \(non-finite/);
  assert.equal(decideBackend([]).ok, false);
});
