// The volunteer tab's Web Worker: connects to the coordinator and runs the shared WorkerLoop, so
// training never blocks the page. Once the job is known it measures this device's backends on the
// job's model and keeps the fastest (or refuses the job). Talks to the page only by messages.

import { io } from 'socket.io-client';
import { systemClock } from '../../shared/clock.ts';
import { SocketLink, type FlockSocket } from '../../shared/training/link.ts';
import { WorkerLoop, type WorkerState } from '../../shared/training/worker-loop.ts';
import { tf } from '../../shared/training/tf.ts';
import { chooseBackendForJob, probeResults, startWithoutProbe } from './backends.ts';
import { probeGradientStep } from '../../shared/training/probe.ts';
import { MNIST_STEP } from '../../shared/training/gradient-step.ts';
import type { WorkerCapabilities } from '../../shared/protocol/messages.ts';
import type { FromWorker, ToWorker } from './messages.ts';

const post = (m: FromWorker): void => (self as unknown as Worker).postMessage(m);
let loop: WorkerLoop | null = null;

/** Forward + backward FLOPs per sample of a Layers model, roughly 3x the forward multiply-adds x2. */
function flopsPerSample(model: tf.LayersModel): number {
  let macs = 0;
  for (const layer of model.layers) {
    const w = layer.getWeights()[0];
    if (!w) continue;
    const out = layer.outputShape as number[];
    const spatial = out.length === 4 ? (out[1] ?? 1) * (out[2] ?? 1) : 1;
    macs += w.size * spatial;
  }
  return macs * 2 * 3;
}

self.onmessage = async (ev: MessageEvent<ToWorker>) => {
  const m = ev.data;
  switch (m.type) {
    case 'start': {
      if (loop) return;
      try {
        // Until the job is known: the forced backend or WASM, announced in the first hello.
        const provisional = await startWithoutProbe(m.backend, m.wasmThreads);
        const capabilities: WorkerCapabilities = {
          backend: provisional.backend,
          adapter: provisional.adapter ?? undefined,
          wasmThreads: provisional.wasmThreads > 1,
          userAgent: navigator.userAgent.slice(0, 500),
          hardwareConcurrency: navigator.hardwareConcurrency,
          runtime: 'browser',
        };
        const socket: FlockSocket = io(m.url, { transports: ['websocket'], reconnectionDelay: 500, reconnectionDelayMax: 10_000 });
        socket.on('connect_error', () => post({ type: 'state', state: 'retrying', detail: 'coordinator unreachable, retrying' }));
        const link = new SocketLink(socket, 30_000);
        let last: { state: WorkerState; detail: string | null } = { state: 'connecting', detail: null };
        loop = new WorkerLoop(link, {
          clock: systemClock,
          jobId: m.jobId ?? undefined,
          dutyCycle: m.dutyCycle,
          prefetch: m.prefetch,
          pipeline: m.pipeline === true,
          capabilities,
          workerId: m.identity?.workerId,
          credential: m.identity?.credential,
          onIdentity: (workerId, credential) => post({ type: 'identity', workerId, credential }),
          prepareJob: async (job, failed) => {
            const choice = await chooseBackendForJob(job, m.backend, undefined, m.wasmThreads, failed);
            // On a refusal the tab trains on no backend (one chosen before may have failed since); the reason is shown.
            if (!choice.ok) {
              post({ type: 'backend', report: null });
              return { ok: false, reason: choice.reason };
            }
            post({ type: 'backend', report: choice.report });
            const { backend, adapter, probes, wasmThreads } = choice.report;
            return { ok: true, capabilities: { ...capabilities, backend, adapter: adapter ?? undefined, wasmThreads: wasmThreads > 1, probes: probeResults(probes) } };
          },
          listener: {
            state: (state, detail) => {
              last = { state, detail: detail ?? null };
              post({ type: 'state', state, detail: detail ?? null });
            },
            stats: (stats) => post({ type: 'stats', stats: { ...stats, refusedByCode: { ...stats.refusedByCode } } }),
            jobUpdate: (update) => post({ type: 'jobUpdate', update }),
            job: (job) => {
              void tf.models.modelFromJSON({ modelTopology: job.modelTopology } as unknown as tf.io.ModelJSON).then((model) => {
                post({ type: 'job', job: { id: job.id, name: job.name, description: job.description, batchSize: job.batchSize, task: job.task }, flopsPerSample: flopsPerSample(model) });
                model.dispose();
              });
            },
          },
        });
        await loop.run();
        socket.close();
        if (last.state === 'unsupported') post({ type: 'fatal', message: `this device cannot train this model: ${last.detail ?? 'unknown reason'}` });
      } catch (err) {
        post({ type: 'fatal', message: err instanceof Error ? err.message : String(err) });
      }
      return;
    }
    case 'probe': {
      try {
        const report = await startWithoutProbe(m.backend, m.wasmThreads);
        post({ type: 'backend', report });
        const model = (await (await fetch(m.modelUrl)).json()) as { modelTopology: unknown };
        const inputShape = ((model.modelTopology as { config: { layers: { config: { batch_input_shape?: (number | null)[] } }[] } }).config.layers[0]?.config.batch_input_shape ?? [null, 28, 28, 1]).slice(1) as number[];
        const figures = await probeGradientStep(model.modelTopology, { ...MNIST_STEP, data: { ...MNIST_STEP.data, featureShape: inputShape } }, { batchSize: m.batchSize, budgetMs: m.budgetMs });
        post({ type: 'probe', figures });
      } catch (err) {
        post({ type: 'fatal', message: err instanceof Error ? err.message : String(err) });
      }
      return;
    }
    case 'pause':
      loop?.pause();
      return;
    case 'resume':
      loop?.resume();
      return;
    case 'duty':
      loop?.setDutyCycle(m.value);
      return;
    case 'stop':
      await loop?.stop();
      return;
  }
};
