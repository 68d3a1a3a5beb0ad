// Volunteer page controller (main thread): consent, controls and the live view. All training runs
// in training.worker.ts; this file only renders what the worker reports and forwards the controls.

import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { BACKENDS, type BackendName, type JobUpdate } from '../../shared/protocol/messages.ts';
import type { WorkerState, WorkerStats } from '../../shared/training/worker-loop.ts';
import type { BackendReport, FromWorker, ToWorker } from './messages.ts';
import type { ProbeFigures } from '../../shared/training/probe.ts';

const params = new URLSearchParams(location.search);
const forced = params.get('backend');
const backend: BackendName | null = forced && (BACKENDS as readonly string[]).includes(forced) ? (forced as BackendName) : null;
const jobParam = params.get('job');

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => document.getElementById(id) as T;
const prefs = {
  get cap(): number {
    return Number(localStorage.getItem('flock.cap') ?? '1') || 1;
  },
  set cap(v: number) {
    localStorage.setItem('flock.cap', String(v));
  },
  get pauseHidden(): boolean {
    return localStorage.getItem('flock.pauseHidden') !== 'false';
  },
  set pauseHidden(v: boolean) {
    localStorage.setItem('flock.pauseHidden', String(v));
  },
};

/** What automation (Playwright, benchmarks) reads; also handy in the console. */
interface PageState {
  started: boolean;
  state: WorkerState | 'idle';
  detail: string | null;
  backend: BackendReport | null;
  stats: WorkerStats | null;
  job: { id: string; name: string } | null;
  lastUpdate: JobUpdate | null;
  fatal: string | null;
  probe: ProbeFigures | null;
}
const view: PageState = { started: false, state: 'idle', detail: null, backend: null, stats: null, job: null, lastUpdate: null, fatal: null, probe: null };
(window as unknown as { flock: PageState }).flock = view;

let worker: Worker | null = null;
let userPaused = false;
let hiddenPaused = false;
let flopsPerSample = 0;
const accPoints: [number[], number[]] = [[], []];
let chart: uPlot | null = null;

function send(m: ToWorker): void {
  worker?.postMessage(m);
}

const STATE_TEXT: Record<WorkerState | 'idle', string> = {
  idle: 'not started',
  connecting: 'connecting to the coordinator',
  downloading: 'downloading',
  computing: 'computing gradients',
  uploading: 'uploading the gradient',
  waiting: 'waiting for work',
  paused: 'paused',
  'paused-by-admin': 'paused by admin',
  finished: 'job finished — thank you!',
  stopped: 'stopped',
  unsupported: 'this device cannot train this model',
  retrying: 'coordinator unreachable, retrying',
};

function renderState(): void {
  $('state').textContent = STATE_TEXT[view.state] + (view.detail && view.state !== 'finished' ? ` (${view.detail})` : '');
  $('state-dot').className = `dot ${view.state}`;
  const running = view.started && !['finished', 'stopped'].includes(view.state);
  $('contribute').classList.toggle('hidden', running);
  $('pause').classList.toggle('hidden', !running);
  $('stop').classList.toggle('hidden', !running);
  $('pause').textContent = userPaused ? 'Resume' : 'Pause';
  if (view.state === 'finished') {
    const acc = view.lastUpdate?.testAccuracy;
    notice(`This job is finished${acc != null ? ` at ${(acc * 100).toFixed(2)}% test accuracy` : ''}. Thank you for contributing!`);
  }
}

function notice(text: string | null): void {
  const n = $('notice');
  n.textContent = text ?? '';
  n.classList.toggle('hidden', !text);
}

function renderStats(s: WorkerStats): void {
  $('sps').textContent = s.samplesPerSec ? Math.round(s.samplesPerSec).toLocaleString() : '–';
  $('shards').textContent = s.shardsDone.toLocaleString();
  $('accepted').textContent = s.accepted.toLocaleString();
  $('refused').textContent = s.refused ? `${s.refused} refused` : '';
  const gflop = (s.samplesDone * flopsPerSample) / 1e9;
  $('gflop').textContent = `${gflop < 10 ? gflop.toFixed(2) : Math.round(gflop).toLocaleString()} GFLOP`;
  $('compute-time').textContent = `${(s.computeMs / 1000).toFixed(1)} s of compute`;
}

function renderUpdate(u: JobUpdate): void {
  $('accuracy').textContent = u.testAccuracy == null ? '–' : `${(u.testAccuracy * 100).toFixed(2)}%`;
  $('version').textContent = u.version.toLocaleString();
  $('progress').textContent = `${Math.round(u.progress * 100)}%`;
  if (u.testAccuracy != null && accPoints[0].at(-1) !== u.version) {
    accPoints[0].push(u.version);
    accPoints[1].push(u.testAccuracy);
    drawChart();
  }
}

function drawChart(): void {
  const el = $('acc-chart');
  if (!chart) {
    chart = new uPlot(
      {
        width: Math.max(280, el.clientWidth),
        height: 160,
        scales: { x: { time: false } },
        axes: [{ stroke: '#a3adc2', grid: { stroke: '#2a3550' } }, { stroke: '#a3adc2', grid: { stroke: '#2a3550' } }],
        series: [{ label: 'version' }, { label: 'test accuracy', stroke: '#5b9dff', width: 2 }],
        legend: { show: true },
      },
      accPoints,
      el,
    );
  } else {
    chart.setData(accPoints);
  }
}

function onWorkerMessage(ev: MessageEvent<FromWorker>): void {
  const m = ev.data;
  switch (m.type) {
    case 'backend': {
      view.backend = m.report;
      $('backend').textContent = m.report.backend.toUpperCase() + (m.report.wasmThreads ? ' (threads)' : '');
      const a = m.report.adapter;
      $('adapter').textContent =
        m.report.backend === 'webgpu' && a
          ? `${a.vendor} ${a.architecture}${a.isFallbackAdapter ? ' (software GPU)' : ''}`
          : m.report.backend === 'wasm'
            ? 'CPU, WebAssembly SIMD'
            : m.report.backend === 'cpu' ? 'CPU, plain JavaScript' : '';
      if (m.report.backend !== 'webgpu' && !backend) notice(m.report.reason);
      break;
    }
    case 'state':
      view.state = m.state;
      view.detail = m.detail;
      renderState();
      break;
    case 'stats':
      view.stats = m.stats;
      renderStats(m.stats);
      break;
    case 'job':
      view.job = { id: m.job.id, name: m.job.name };
      flopsPerSample = m.flopsPerSample;
      showJob(m.job.name, m.job.description);
      break;
    case 'jobUpdate':
      view.lastUpdate = m.update;
      renderUpdate(m.update);
      if (m.update.status === 'finished' || m.update.status === 'cancelled') {
        view.state = 'finished';
        renderState();
      }
      break;
    case 'probe':
      view.probe = m.figures;
      break;
    case 'fatal':
      view.fatal = m.message;
      view.state = 'unsupported';
      notice(`Training stopped: ${m.message}`);
      renderState();
      break;
  }
}

function showJob(name: string, description: string): void {
  $('job-name').textContent = name;
  $('job-lead').textContent = `${description} Your tab computes gradients on small batches of the data and sends them to this project's coordinator. Nothing runs until you press Contribute; you can pause or stop at any time.`;
}

function start(): void {
  if (worker) return;
  view.started = true;
  worker = new Worker(new URL('./training.worker.ts', import.meta.url), { type: 'module' });
  worker.onmessage = onWorkerMessage;
  worker.onerror = (e) => {
    view.fatal = e.message;
    notice(`The training worker failed: ${e.message}`);
  };
  send({ type: 'start', url: location.origin, backend, jobId: jobParam, dutyCycle: prefs.cap, prefetch: params.get('prefetch') === '1' });
  view.state = 'connecting';
  renderState();
}

function applyPause(): void {
  send({ type: userPaused || hiddenPaused ? 'pause' : 'resume' });
}

$('contribute').addEventListener('click', start);
$('pause').addEventListener('click', () => {
  userPaused = !userPaused;
  applyPause();
  renderState();
});
$('stop').addEventListener('click', () => {
  send({ type: 'stop' });
  view.state = 'stopped';
  renderState();
  setTimeout(() => {
    worker?.terminate();
    worker = null;
  }, 2000);
});
const cap = $<HTMLSelectElement>('cap');
cap.value = String(prefs.cap);
cap.addEventListener('change', () => {
  prefs.cap = Number(cap.value);
  send({ type: 'duty', value: prefs.cap });
});
const pauseHidden = $<HTMLInputElement>('pause-hidden');
pauseHidden.checked = prefs.pauseHidden;
pauseHidden.addEventListener('change', () => {
  prefs.pauseHidden = pauseHidden.checked;
  if (!pauseHidden.checked && hiddenPaused) {
    hiddenPaused = false;
    applyPause();
  }
});
document.addEventListener('visibilitychange', () => {
  hiddenPaused = prefs.pauseHidden && document.visibilityState === 'hidden';
  applyPause();
});
// Closing the tab hands the lease back at once rather than leaving it to expire.
addEventListener('pagehide', () => send({ type: 'stop' }));

async function loadJob(): Promise<void> {
  try {
    const jobs = (await (await fetch('/api/jobs')).json()) as { id: string; name: string; description: string; status: string }[];
    const job = jobs.find((j) => j.id === jobParam) ?? jobs.find((j) => j.status === 'running') ?? jobs[0];
    if (!job) {
      $('job-name').textContent = 'No job right now';
      notice('The coordinator has no training job at the moment. Come back later!');
      return;
    }
    showJob(job.name, job.description);
    const hist = (await (await fetch(`/api/jobs/${job.id}/metrics`)).json()) as { evaluations: { version: number; testAccuracy: number }[] };
    for (const e of hist.evaluations) {
      accPoints[0].push(e.version);
      accPoints[1].push(e.testAccuracy);
    }
    const last = hist.evaluations.at(-1);
    if (last) $('accuracy').textContent = `${(last.testAccuracy * 100).toFixed(2)}%`;
    if (accPoints[0].length) drawChart();
  } catch {
    notice('The coordinator is unreachable right now; Contribute will keep retrying.');
  }
}

renderState();
void loadJob();
if (params.get('autostart') === '1') start();

/** Benchmarks: `?probe=<jobId>` measures this backend's isolated gradient step in a Web Worker. */
const probeJob = params.get('probe');
if (probeJob && !worker) {
  worker = new Worker(new URL('./training.worker.ts', import.meta.url), { type: 'module' });
  worker.onmessage = onWorkerMessage;
  send({ type: 'probe', backend, modelUrl: `/api/jobs/${encodeURIComponent(probeJob)}/model/model.json`, batchSize: Number(params.get('batch') ?? 64), budgetMs: Number(params.get('ms') ?? 4000) });
}
