// Volunteer page controller (main thread): consent, controls, remembered settings and the live
// view. All training runs in training.worker.ts; this file only renders what the worker reports
// and forwards the controls, so the page stays responsive (its longest task is measured in e2e).

import { BACKENDS, type BackendName, type JobUpdate } from '../../shared/protocol/messages.ts';
import type { WorkerState, WorkerStats } from '../../shared/training/worker-loop.ts';
import type { BackendReport, FromWorker, ToWorker } from './messages.ts';
import type { ProbeFigures } from '../../shared/training/probe.ts';
import { COLORS, destroyChart, makeChart, type uPlot } from '../common/charts.ts';
import { gflop, int, pct } from '../common/format.ts';
import { prefs } from '../common/prefs.ts';

const params = new URLSearchParams(location.search);
const forced = params.get('backend');
const backend: BackendName | null = forced && (BACKENDS as readonly string[]).includes(forced) ? (forced as BackendName) : null;
const jobParam = params.get('job');
/** Benchmarks: `?wasmThreads=N` sizes the WASM thread pool (cross-origin isolated pages only). */
const wasmThreadsParam = params.get('wasmThreads');
const wasmThreads = wasmThreadsParam ? Number(wasmThreadsParam) : undefined;

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => document.getElementById(id) as T;

type PauseReason = 'user' | 'hidden' | 'battery';

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
  /** Why the tab is paused right now (empty: not paused by this page). */
  pausedFor: PauseReason[];
  /** Share of wall time spent computing over the last 15 s (null: not enough data yet). */
  busyFraction: number | null;
  cap: number;
  /** The job named by `?job=` does not exist, or is over: nothing to contribute to here. */
  jobProblem: 'unknown' | 'finished' | 'cancelled' | null;
}
const view: PageState = { started: false, state: 'idle', detail: null, backend: null, stats: null, job: null, lastUpdate: null, fatal: null, probe: null, pausedFor: [], busyFraction: null, cap: prefs.cap, jobProblem: null };
(window as unknown as { flock: PageState }).flock = view;

let worker: Worker | null = null;
const pauses = new Set<PauseReason>();
let flopsPerSample = 0;
const accPoints: [number[], number[]] = [[], []];
let chart: uPlot | null = null;
/** The job whose figures (accuracy curve, version, progress) the page shows. */
let figuresFor: string | null = null;
/** (wall ms, cumulative compute ms) at each stats message, for the measured usage. */
const busyLog: { at: number; computeMs: number }[] = [];

function send(m: ToWorker): void {
  worker?.postMessage(m);
}

// ---- state line and notices --------------------------------------------------------------------

const PAUSE_TEXT: Record<PauseReason, string> = { user: 'by you', hidden: 'this tab is hidden', battery: 'on battery power' };

function stateText(): string {
  const d = view.detail;
  switch (view.state) {
    case 'idle':
      return 'not started';
    case 'connecting':
      return 'connecting to the coordinator';
    case 'downloading':
      return d?.startsWith('weights') ? `downloading ${d}` : d === 'model' ? 'downloading the model' : 'downloading';
    case 'computing':
      return `computing gradients${d ? ` (${d})` : ''}`;
    case 'uploading':
      return 'uploading the gradient';
    case 'probing':
      return `measuring this device's speed${d ? ` (${d})` : ''}`;
    case 'waiting':
      if (d?.startsWith('usage cap')) return `resting (${d})`;
      return d && d !== 'asking for work' ? `waiting for work: ${d}` : 'waiting for work';
    case 'paused':
      return `paused${view.pausedFor.length ? ` (${view.pausedFor.map((r) => PAUSE_TEXT[r]).join(', ')})` : ''}`;
    case 'paused-by-admin':
      return 'paused by admin';
    case 'finished':
      return view.lastUpdate?.status === 'cancelled' ? 'job cancelled — thank you!' : 'job finished — thank you!';
    case 'stopped':
      return 'stopped';
    case 'unsupported':
      return 'this device cannot train this model';
    case 'retrying':
      return 'coordinator unreachable, retrying';
  }
}

type Tone = 'info' | 'warn' | 'ok' | 'bad';
const notices = new Map<string, { tone: Tone; text: string }>();

function setNotice(key: string, tone: Tone, text: string | null): void {
  if (text === null) notices.delete(key);
  else notices.set(key, { tone, text });
  const box = $('notices');
  box.replaceChildren(
    ...[...notices.entries()].map(([k, n]) => {
      const p = document.createElement('p');
      p.className = `notice ${n.tone === 'warn' ? '' : n.tone}`;
      p.dataset.key = k;
      p.textContent = n.text;
      if (n.tone === 'bad' || n.tone === 'warn') p.setAttribute('role', 'alert');
      return p;
    }),
  );
}

function renderState(): void {
  $('state').textContent = stateText();
  $('state-dot').className = `dot ${view.state}`;
  const running = view.started && !['finished', 'stopped', 'unsupported'].includes(view.state);
  const over = view.state === 'finished' || view.state === 'unsupported' || view.jobProblem !== null;
  $('contribute').classList.toggle('hidden', running || over);
  $('contribute').textContent = view.state === 'stopped' ? 'Contribute again' : 'Contribute';
  setNotice('stopped', 'ok', view.state === 'stopped' ? 'You stopped contributing; the batch this tab held was handed back at once. Thank you!' : null);
  $('pause').classList.toggle('hidden', !running);
  $('stop').classList.toggle('hidden', !running);
  $('pause').textContent = pauses.has('user') ? 'Resume' : 'Pause';
  $('pause').setAttribute('aria-pressed', String(pauses.has('user')));

  setNotice('unreachable', 'warn', view.state === 'retrying' ? "Can't reach the coordinator. This tab keeps retrying, waiting a little longer each time (up to 10 s), and carries on by itself when it is back." : null);
  const d = view.detail ?? '';
  const noWork = view.state === 'waiting' && (d.includes('no job') || d.includes('shard') || d.includes('final'));
  setNotice('nowork', 'info', noWork ? `No work available right now (${d}). This tab asks again shortly; you can leave it open.` : null);
  setNotice('admin', 'info', view.state === 'paused-by-admin' ? "The job's admin has paused training. This tab waits and resumes by itself when they do." : null);
  if (view.state === 'finished') {
    const cancelled = view.lastUpdate?.status === 'cancelled';
    const headline = view.lastUpdate ? metricOf(view.lastUpdate) : null;
    const accText = headline != null ? ` at ${metricText(headline)}` : '';
    setNotice('finished', 'ok', cancelled ? 'This job was cancelled by its admin. Thank you for contributing!' : `This job is finished${accText}. Thank you for contributing!`);
  }
}

// ---- figures -----------------------------------------------------------------------------------

let creditTimer: ReturnType<typeof setInterval> | null = null;
/** Validated work (spot-checked, agreed with another worker): the only work credited. */
function watchCredit(workerId: string): void {
  if (creditTimer) clearInterval(creditTimer);
  const load = async (): Promise<void> => {
    try {
      const c = (await (await fetch(`/api/credit/${encodeURIComponent(workerId)}`)).json()) as { validatedSamples: number; validatedResults: number; quarantined: string | null };
      $('credit').textContent = `${int(c.validatedSamples)} samples`;
      $('credit-note').textContent = c.quarantined ? `No more work for this tab: ${c.quarantined}` : `${int(c.validatedResults)} result${c.validatedResults === 1 ? '' : 's'} confirmed by a spot check; only confirmed work counts`;
    } catch {
      /* shown again at the next try */
    }
  };
  void load();
  creditTimer = setInterval(() => void load(), 5000);
}

/** Bytes as MB with one decimal below 100 (what a volunteer on a metered connection reads). */
function megabytes(bytes: number): string {
  const mb = bytes / 1e6;
  return `${mb < 100 ? mb.toFixed(1) : int(mb)} MB`;
}

function renderStats(s: WorkerStats): void {
  $('sps').textContent = s.samplesPerSec ? int(s.samplesPerSec) : '–';
  $('shards').textContent = int(s.shardsDone);
  $('accepted').textContent = int(s.accepted);
  $('refused').textContent = s.refused ? `${int(s.refused)} refused (${Object.entries(s.refusedByCode).map(([c, n]) => `${n} ${c.toLowerCase().replaceAll('_', ' ')}`).join(', ')})` : '';
  $('gflop').textContent = gflop(s.samplesDone * flopsPerSample);
  $('compute-time').textContent = `${(s.computeMs / 1000).toFixed(1)} s of compute`;
  $('net').textContent = megabytes(s.bytesDown + s.bytesUp);
  $('net-note').textContent = `${megabytes(s.bytesDown)} down (training data, model), ${megabytes(s.bytesUp)} up (gradients)`;
  const now = performance.now();
  busyLog.push({ at: now, computeMs: s.computeMs });
  while (busyLog.length > 2 && busyLog[0]!.at < now - 15_000) busyLog.shift();
  const first = busyLog[0]!;
  if (now - first.at > 2000) {
    view.busyFraction = Math.min(1, (s.computeMs - first.computeMs) / (now - first.at));
    $('busy').textContent = `measured: computing ${Math.round(view.busyFraction * 100)}% of the time`;
  }
}

// The job's headline test metric: accuracy (charted in %) for classification, MAE for regression.
let regression = false;
function setTask(task: string | undefined): void {
  const r = task === 'regression';
  if (r === regression) return;
  regression = r;
  $('accuracy-k').textContent = r ? 'Test MAE (lower is better)' : 'Test accuracy';
  $('acc-chart').setAttribute('aria-label', r ? 'Test MAE over model versions' : 'Test accuracy over model versions');
  chart?.destroy();
  chart = null;
}
const metricOf = (m: { testAccuracy?: number | null; testMae?: number | null }): number | null => (regression ? (m.testMae ?? null) : (m.testAccuracy ?? null));
const metricText = (v: number): string => (regression ? `test MAE ${v.toPrecision(4)}` : `${pct(v)} test accuracy`);
const chartValue = (v: number): number => (regression ? v : v * 100);

function renderUpdate(u: JobUpdate): void {
  const m = metricOf(u);
  $('accuracy').textContent = m == null ? '–' : regression ? m.toPrecision(4) : pct(m);
  $('version').textContent = int(u.version);
  $('progress').textContent = `${Math.round(u.progress * 100)}%`;
  // A new evaluation (updates also come for pauses etc., repeating the last figure).
  if (m != null && accPoints[0].at(-1) !== u.version && accPoints[1].at(-1) !== chartValue(m)) {
    accPoints[0].push(u.version);
    accPoints[1].push(chartValue(m));
    drawChart();
  }
}

function drawChart(): void {
  if (chart) return chart.setData(accPoints);
  if (accPoints[0].length < 2) {
    // One point makes no curve (and uPlot would stretch its axis to 0..100): say it in words.
    const p = document.createElement('p');
    p.className = 'muted small';
    p.textContent = `Evaluated once so far: ${regression ? `test MAE ${accPoints[1][0]!.toPrecision(4)}` : `${accPoints[1][0]!.toFixed(2)}% test accuracy`} at model version ${int(accPoints[0][0]!)} (the curve needs two evaluations).`;
    $('acc-chart').replaceChildren(p);
    return;
  }
  $('acc-chart').replaceChildren();
  chart = makeChart(
    $('acc-chart'),
    {
      xTime: false,
      xLabel: 'model version',
      height: 170,
      series: [
        regression
          ? { label: 'test MAE', stroke: COLORS.accuracy, width: 2, value: (_u, v) => (v == null ? '–' : v.toPrecision(4)) }
          : { label: 'test accuracy', stroke: COLORS.accuracy, width: 2, value: (_u, v) => (v == null ? '–' : `${v.toFixed(2)}%`) },
      ],
      axes: [regression ? { size: 60 } : { values: (_u, t) => t.map((v) => `${v}%`), size: 60 }],
      scales: { y: regression ? { range: (_u, min, max) => [0, max * 1.1] } : { range: (_u, min, max) => [Math.max(0, Math.floor(min - 1)), Math.min(100, Math.ceil(max + 1))] } },
    },
    accPoints,
  );
}

function renderBackend(r: BackendReport | null): void {
  if (!r) {
    $('backend').textContent = '–';
    $('adapter').textContent = '';
    setNotice('backend', 'info', null);
    return;
  }
  $('backend').textContent = r.backend.toUpperCase();
  const a = r.adapter;
  $('adapter').textContent =
    r.backend === 'webgpu' && a
      ? `GPU: ${a.vendor} ${a.architecture}${a.isFallbackAdapter ? ' (software)' : ''}`
      : r.backend === 'wasm'
        ? 'CPU, WebAssembly SIMD'
        : r.backend === 'cpu'
          ? 'CPU, plain JavaScript'
          : '';
  const measured = r.probes.filter((p) => p.status === 'ok').map((p) => `${p.backend}${p.software ? ' (software GPU)' : ''} ${int(p.samplesPerSec)} samples/s`);
  const reason = r.reason.charAt(0).toUpperCase() + r.reason.slice(1);
  if (backend) {
    setNotice('backend', 'info', `Using ${r.backend.toUpperCase()} as the page address asks (?backend=${backend}).${measured.length ? ` Measured: ${measured.join('; ')}.` : ''}`);
  } else if (r.backend !== 'webgpu') {
    const why = !a ? 'this browser offers no WebGPU' : a.isFallbackAdapter ? `its only WebGPU adapter is a software one (${a.vendor} ${a.architecture}), slower than the CPU` : 'WebGPU was slower or failed here';
    // The reason already carries the measured figures when the choice was made by measuring.
    const figures = measured.length && !/measured/i.test(r.reason) ? ` (measured: ${measured.join('; ')})` : '';
    setNotice('backend', 'info', `No usable GPU: ${why}, so this tab trains with ${r.backend === 'wasm' ? 'WebAssembly (WASM) on the CPU' : 'plain JavaScript on the CPU'} instead. ${reason}${figures}.`.replace(/\.\.$/, '.'));
  } else {
    setNotice('backend', 'info', measured.length ? `Training on the GPU (measured: ${measured.join('; ')}).` : null);
  }
}

// ---- the worker --------------------------------------------------------------------------------

function onWorkerMessage(ev: MessageEvent<FromWorker>): void {
  const m = ev.data;
  switch (m.type) {
    case 'backend':
      view.backend = m.report;
      renderBackend(m.report);
      break;
    case 'state':
      view.state = m.state;
      view.detail = m.detail;
      if (m.state === 'stopped') retire();
      else reconcile(m.state);
      renderState();
      break;
    case 'stats':
      view.stats = m.stats;
      renderStats(m.stats);
      break;
    case 'job': {
      const before = view.job;
      view.job = { id: m.job.id, name: m.job.name };
      setTask(m.job.task);
      flopsPerSample = m.flopsPerSample;
      showJob(m.job.name, m.job.description);
      if (before && before.id !== m.job.id) {
        notices.delete('finished');
        setNotice('moved', 'info', `This tab now helps train ${m.job.name} (it was training ${before.name}): the coordinator shares its volunteers between its jobs, by priority.`);
      }
      // The figures shown so far may be another job's (the one previewed, or the one it left).
      if (figuresFor !== m.job.id) showFiguresOf(m.job.id);
      break;
    }
    case 'jobUpdate':
      // Updates of a job this tab has just left may still arrive: only its own job's count.
      if (view.job && m.update.jobId !== view.job.id) break;
      view.lastUpdate = m.update;
      renderUpdate(m.update);
      // A tab that pins no job may move on to another one: its loop says when it is over.
      if (jobParam && (m.update.status === 'finished' || m.update.status === 'cancelled')) {
        view.state = 'finished';
        renderState();
      }
      break;
    case 'probe':
      view.probe = m.figures;
      break;
    case 'identity':
      prefs.identity = { workerId: m.workerId, credential: m.credential };
      watchCredit(m.workerId);
      break;
    case 'fatal':
      view.fatal = m.message;
      view.state = 'unsupported';
      setNotice('fatal', 'bad', `Training stopped: ${m.message}. Nothing more runs in this tab; thank you for trying.`);
      renderState();
      break;
  }
}

/**
 * Shows `id`'s figures instead of another job's: the coordinator gave this tab another job than
 * the one previewed, or moved it (its job finished or was paused, or another needed it more).
 */
function showFiguresOf(id: string): void {
  view.lastUpdate = null;
  accPoints[0].length = 0;
  accPoints[1].length = 0;
  destroyChart(chart);
  chart = null;
  const p = document.createElement('p');
  p.className = 'muted small';
  p.textContent = "The accuracy curve appears after the coordinator's first evaluation of the model.";
  $('acc-chart').replaceChildren(p);
  for (const k of ['accuracy', 'version', 'progress']) $(k).textContent = '–';
  void loadFigures(id).catch(() => undefined);
}

function showJob(name: string, description: string): void {
  $('job-name').textContent = name;
  $('job-h').textContent = `The job: ${name}`;
  const lead = $('job-lead');
  const b = document.createElement('b');
  b.textContent = name;
  const host = document.createElement('b');
  host.textContent = location.host;
  lead.replaceChildren('If you press Contribute, this tab will use your device\u2019s GPU or CPU to help train ', b, ' for the people who run the Flock coordinator at ', host, '.');
  $('job-about').textContent = `About this job: ${description}`;
  document.title = `Flock — help train ${name}`;
}

function start(): void {
  if (worker) return;
  view.started = true;
  notices.delete('finished');
  synced = false;
  worker = new Worker(new URL('./training.worker.ts', import.meta.url), { type: 'module' });
  worker.onmessage = onWorkerMessage;
  worker.onerror = (e) => {
    view.fatal = e.message;
    setNotice('fatal', 'bad', `The training worker failed: ${e.message}`);
  };
  const identity = prefs.identity;
  send({ type: 'start', url: location.origin, backend, jobId: jobParam, dutyCycle: prefs.cap, ...(params.has('prefetch') ? { prefetch: params.get('prefetch') === '1' } : {}), pipeline: params.get('pipeline') === '1', ...(wasmThreads !== undefined ? { wasmThreads } : {}), ...(identity ? { identity } : {}) });
  if (pauses.size) send({ type: 'pause' });
  view.state = 'connecting';
  renderState();
}

/** The loop has stopped (its lease handed back): end the worker and its connection. */
function retire(): void {
  const w = worker;
  worker = null;
  setTimeout(() => w?.terminate(), 200);
}

function stop(): void {
  send({ type: 'stop' });
  view.state = 'stopped';
  renderState();
  // If the worker does not confirm (stuck in a step), end it anyway: the socket closes with it
  // and the coordinator releases the lease on disconnect.
  const w = worker;
  setTimeout(() => {
    if (w && worker === w) retire();
  }, 3000);
}

// ---- pausing: by the volunteer, when hidden, on battery ----------------------------------------

let synced = false;
/**
 * The worker drops controls that arrive before its loop exists (it is still starting its backend),
 * so each state it reports is checked against what the page wants, and corrected.
 */
function reconcile(state: WorkerState): void {
  if (!synced) {
    synced = true;
    send({ type: 'duty', value: prefs.cap });
  }
  const terminal = state === 'finished' || state === 'unsupported';
  if (terminal) return;
  if (pauses.size > 0 && state !== 'paused') send({ type: 'pause' });
  else if (pauses.size === 0 && state === 'paused') send({ type: 'resume' });
}

function setPaused(reason: PauseReason, on: boolean): void {
  const before = pauses.size > 0;
  if (on) pauses.add(reason);
  else pauses.delete(reason);
  view.pausedFor = [...pauses];
  const after = pauses.size > 0;
  if (before !== after) send({ type: after ? 'pause' : 'resume' });
  renderState();
}

interface BatteryLike extends EventTarget {
  readonly charging: boolean;
}
let battery: BatteryLike | null = null;
const applyBattery = (): void => setPaused('battery', prefs.pauseOnBattery && battery !== null && !battery.charging);
const applyHidden = (): void => setPaused('hidden', prefs.pauseHidden && document.visibilityState === 'hidden');

const nav = navigator as Navigator & { getBattery?: () => Promise<BatteryLike> };
if (typeof nav.getBattery === 'function') {
  nav
    .getBattery()
    .then((b) => {
      battery = b;
      b.addEventListener('chargingchange', applyBattery);
      applyBattery();
    })
    .catch(() => ($('battery-note').textContent = '(battery status unavailable)'));
} else {
  $('battery-note').textContent = '(this browser does not report battery status)';
}

// ---- controls ----------------------------------------------------------------------------------

$('contribute').addEventListener('click', start);
$('pause').addEventListener('click', () => setPaused('user', !pauses.has('user')));
$('stop').addEventListener('click', stop);

for (const r of document.querySelectorAll<HTMLInputElement>('input[name="cap"]')) {
  r.checked = Number(r.value) === prefs.cap;
  r.addEventListener('change', () => {
    if (!r.checked) return;
    prefs.cap = Number(r.value);
    view.cap = prefs.cap;
    busyLog.length = 0;
    $('busy').textContent = '\u00a0';
    send({ type: 'duty', value: prefs.cap });
  });
}
const pauseHidden = $<HTMLInputElement>('pause-hidden');
pauseHidden.checked = prefs.pauseHidden;
pauseHidden.addEventListener('change', () => {
  prefs.pauseHidden = pauseHidden.checked;
  applyHidden();
});
const pauseBattery = $<HTMLInputElement>('pause-battery');
pauseBattery.checked = prefs.pauseOnBattery;
pauseBattery.addEventListener('change', () => {
  prefs.pauseOnBattery = pauseBattery.checked;
  applyBattery();
});
document.addEventListener('visibilitychange', applyHidden);
// Closing or leaving the tab hands the lease back at once rather than leaving it to expire (the
// coordinator also releases a worker's leases the moment its connection drops).
addEventListener('pagehide', () => send({ type: 'stop' }));

// ---- the job, before consent -------------------------------------------------------------------

interface PublicJob {
  id: string;
  name: string;
  description: string;
  status: string;
  version: number;
  progress: number;
  task?: 'classification' | 'regression';
  metrics: { testAccuracy: number | null; testMae?: number | null };
  best: { version: number; testAccuracy: number | null } | null;
}

/** Links to the jobs one can contribute to now (`?job=<id>`), or a line saying there are none. */
function offerJobs(jobs: PublicJob[], except: string | null): void {
  const open = jobs.filter((j) => (j.status === 'running' || j.status === 'paused') && j.id !== except);
  const box = $('other-jobs');
  box.classList.remove('hidden');
  const h = document.createElement('h2');
  h.textContent = open.length ? 'Jobs you can help with now' : 'No other job is running right now; come back later!';
  const ul = document.createElement('ul');
  for (const j of open) {
    const li = document.createElement('li');
    const a = document.createElement('a');
    a.href = `/?job=${encodeURIComponent(j.id)}`;
    a.textContent = j.name;
    const note = document.createElement('span');
    note.className = 'muted small';
    note.textContent = ` (${j.status}, ${Math.round(j.progress * 100)}% done${j.metrics.testAccuracy != null ? `, ${pct(j.metrics.testAccuracy)} test accuracy` : ''})`;
    li.append(a, note);
    ul.append(li);
  }
  box.replaceChildren(h, ...(open.length ? [ul] : []));
}

/** `?job=` names a job that is missing or over: say so, offer the running ones, never start. */
function jobUnavailable(problem: 'unknown' | 'finished' | 'cancelled', jobs: PublicJob[], named: PublicJob | undefined): void {
  view.jobProblem = problem;
  if (worker) stop();
  // Nothing to consent to or contribute here: only the job's outcome (if any) and the other jobs.
  for (const id of ['consent', 'controls-panel', 'give-panel']) $(id).classList.add('hidden');
  if (problem === 'unknown') $('job-panel').classList.add('hidden');
  if (problem === 'unknown') {
    $('job-name').textContent = 'No such job';
    $('job-lead').textContent = `This Flock coordinator has no job “${jobParam ?? ''}”. The link may be mistyped, or the job was removed. Nothing runs in this tab.`;
    document.title = 'Flock — no such job';
  } else if (named) {
    showJob(named.name, named.description);
    const acc = named.metrics.testAccuracy;
    $('job-lead').textContent =
      problem === 'finished'
        ? `This job is finished${acc != null ? `: its final model reached ${pct(acc)} test accuracy` : ''}. Thank you to everyone who contributed! There is nothing left to compute for it.`
        : `This job was cancelled by its admin${acc != null ? ` at ${pct(acc)} test accuracy` : ''}. There is nothing left to compute for it.`;
    document.title = `Flock — ${named.name} (${problem})`;
  }
  renderState();
  offerJobs(jobs, named?.id ?? null);
}

async function loadJob(attempt = 0): Promise<void> {
  try {
    const res = await fetch('/api/jobs');
    if (!res.ok) throw new Error(String(res.status));
    const jobs = (await res.json()) as PublicJob[];
    setNotice('unreachable-page', 'warn', null);
    if (jobParam !== null) {
      const named = jobs.find((j) => j.id === jobParam);
      if (!named) return jobUnavailable('unknown', jobs, undefined);
      // Over: its figures and accuracy curve stay visible below (loaded as for a running job).
      if (named.status === 'finished' || named.status === 'cancelled') jobUnavailable(named.status, jobs, named);
    }
    const job = jobs.find((j) => j.id === jobParam) ?? jobs.find((j) => j.status === 'running') ?? jobs.find((j) => j.status === 'paused');
    if (!job) {
      $('job-name').textContent = 'No job right now';
      $('job-lead').textContent = 'This Flock coordinator has no training job at the moment. Come back later! If you press Contribute anyway, this tab waits until a job starts.';
      setNotice('nojob', 'info', jobs.length ? `The last job (${jobs.at(-1)!.name}) is ${jobs.at(-1)!.status}.` : 'No job has been created yet.');
      return;
    }
    setNotice('nojob', 'info', null);
    if (!view.job && view.jobProblem === null) showJob(job.name, job.description);
    if (!view.job) setTask(job.task);
    if (view.job) return; // the tab already trains; its own job's figures are shown
    $('version').textContent = int(job.version);
    $('progress').textContent = `${Math.round(job.progress * 100)}%`;
    await loadFigures(job.id);
  } catch {
    // Backoff with jitter: 1, 2, 4... up to 15 s.
    const wait = Math.min(15_000, 1000 * 2 ** attempt) * (0.75 + Math.random() * 0.5);
    setNotice('unreachable-page', 'warn', `Can't reach the coordinator right now; retrying in ${Math.round(wait / 1000)} s.`);
    setTimeout(() => void loadJob(attempt + 1), wait);
  }
}

/** A job's accuracy history so far (the chart), from the public API; best effort. */
async function loadFigures(jobId: string): Promise<void> {
  figuresFor = jobId;
  const hist = (await (await fetch(`/api/jobs/${encodeURIComponent(jobId)}/metrics`)).json()) as { evaluations: { version: number; testAccuracy: number | null; testMae: number | null }[] };
  // The tab moved on while this was loading: these figures are another job's.
  if (view.job && view.job.id !== jobId) return;
  for (const e of hist.evaluations) {
    if (accPoints[0].length && e.version <= accPoints[0].at(-1)!) continue;
    const m = metricOf(e);
    if (m == null) continue;
    accPoints[0].push(e.version);
    accPoints[1].push(chartValue(m));
  }
  const last = hist.evaluations.at(-1);
  const lastM = last ? metricOf(last) : null;
  if (lastM != null && !view.lastUpdate) $('accuracy').textContent = regression ? lastM.toPrecision(4) : pct(lastM);
  if (accPoints[0].length) drawChart();
}

applyHidden();
renderState();
// A named job starts only once it is known to exist and to be running (never another one).
const loaded = loadJob();
if (params.get('autostart') === '1') {
  if (jobParam === null) start();
  else void loaded.then(() => view.jobProblem === null && start());
}

/** Benchmarks: `?probe=<jobId>` measures this backend's isolated gradient step in a Web Worker. */
const probeJob = params.get('probe');
if (probeJob && !worker) {
  worker = new Worker(new URL('./training.worker.ts', import.meta.url), { type: 'module' });
  worker.onmessage = onWorkerMessage;
  send({ type: 'probe', backend, modelUrl: `/api/jobs/${encodeURIComponent(probeJob)}/model/model.json`, batchSize: Number(params.get('batch') ?? 64), budgetMs: Number(params.get('ms') ?? 4000), ...(wasmThreads !== undefined ? { wasmThreads } : {}) });
}
