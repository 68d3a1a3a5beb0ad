// Admin dashboard: signs in with the admin token (from the printed URL's #token= or the form),
// then shows every job's figures, the accuracy chart and the connected workers, with controls.

import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

interface JobSummary {
  id: string;
  name: string;
  status: string;
  version: number;
  epoch: number;
  maxEpochs: number;
  progress: number;
  workers: number;
  samplesPerSec: number;
  metrics: { testAccuracy: number | null; testLoss: number | null };
  updates: { applied: number; refused: Record<string, number> };
}

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => document.getElementById(id) as T;
const fromHash = new URLSearchParams(location.hash.slice(1)).get('token');
if (fromHash) {
  sessionStorage.setItem('flock.token', fromHash);
  history.replaceState(null, '', location.pathname + location.search);
}
let token = sessionStorage.getItem('flock.token') ?? '';
let chart: uPlot | null = null;

async function api<T>(path: string, init: RequestInit = {}): Promise<T> {
  const res = await fetch(path, { ...init, headers: { ...(init.headers ?? {}), Authorization: `Bearer ${token}` } });
  if (res.status === 401) throw new Error('unauthorized');
  if (!res.ok) throw new Error(`${res.status}`);
  return (await res.json()) as T;
}

async function signIn(candidate: string): Promise<boolean> {
  token = candidate;
  try {
    await api('/api/workers');
    sessionStorage.setItem('flock.token', token);
    $('signin').classList.add('hidden');
    $('app').classList.remove('hidden');
    return true;
  } catch {
    $('signin').classList.remove('hidden');
    $('app').classList.add('hidden');
    if (candidate) {
      $('signin-error').textContent = 'That token was refused.';
      $('signin-error').classList.remove('hidden');
    }
    return false;
  }
}

const pct = (x: number | null): string => (x == null ? '–' : `${(x * 100).toFixed(2)}%`);

function cell(text: string): HTMLTableCellElement {
  const td = document.createElement('td');
  td.textContent = text;
  return td;
}

function renderJobs(jobs: JobSummary[]): void {
  const body = $('jobs').querySelector('tbody')!;
  body.replaceChildren(
    ...jobs.map((j) => {
      const tr = document.createElement('tr');
      const name = cell(j.name);
      const status = document.createElement('td');
      status.innerHTML = `<span class="badge ${j.status}">${j.status}</span>`;
      const prog = document.createElement('td');
      prog.innerHTML = `<div class="bar" role="progressbar" aria-valuenow="${Math.round(j.progress * 100)}" aria-valuemin="0" aria-valuemax="100"><span style="width:${(j.progress * 100).toFixed(1)}%"></span></div><span class="muted">epoch ${Math.min(j.epoch + 1, j.maxEpochs)}/${j.maxEpochs}</span>`;
      const refused = Object.values(j.updates.refused).reduce((a, b) => a + b, 0);
      const model = document.createElement('td');
      model.innerHTML = `<a href="/api/jobs/${encodeURIComponent(j.id)}/model/model.json" download>model.json</a> · <a href="/api/jobs/${encodeURIComponent(j.id)}/metrics" download="metrics.json">metrics</a>`;
      const actions = document.createElement('td');
      for (const act of j.status === 'paused' ? ['resume', 'cancel'] : j.status === 'running' ? ['pause', 'cancel'] : []) {
        const b = document.createElement('button');
        b.textContent = act[0]!.toUpperCase() + act.slice(1);
        if (act === 'cancel') b.className = 'danger';
        b.onclick = async () => {
          if (act === 'cancel' && !confirm(`Cancel job ${j.name}? Workers stop at once.`)) return;
          await api(`/api/jobs/${encodeURIComponent(j.id)}/${act}`, { method: 'POST' });
          void refresh();
        };
        actions.append(b, ' ');
      }
      tr.append(name, status, prog, cell(pct(j.metrics.testAccuracy)), cell(j.metrics.testLoss?.toFixed(4) ?? '–'), cell(String(j.workers)), cell(Math.round(j.samplesPerSec).toLocaleString()), cell(j.version.toLocaleString()), cell(`${j.updates.applied} / ${refused} refused`), model, actions);
      return tr;
    }),
  );
}

async function renderChart(jobId: string): Promise<void> {
  const m = await api<{ evaluations: { version: number; testAccuracy: number; testLoss: number }[] }>(`/api/jobs/${encodeURIComponent(jobId)}/metrics`);
  const data: uPlot.AlignedData = [m.evaluations.map((e) => e.version), m.evaluations.map((e) => e.testAccuracy)];
  if (!chart) {
    const el = $('chart');
    chart = new uPlot(
      {
        width: Math.max(300, el.clientWidth),
        height: 220,
        scales: { x: { time: false } },
        axes: [{ stroke: '#a3adc2', grid: { stroke: '#2a3550' } }, { stroke: '#a3adc2', grid: { stroke: '#2a3550' } }],
        series: [{ label: 'version' }, { label: 'test accuracy', stroke: '#3ecf8e', width: 2 }],
      },
      data,
      el,
    );
  } else chart.setData(data);
}

async function refresh(): Promise<void> {
  try {
    const [jobs, workers] = await Promise.all([
      api<JobSummary[]>('/api/jobs'),
      api<{ workerId: string; capabilities: { runtime: string; backend: string; adapter?: { vendor: string; architecture: string } }; jobId?: string; connectedAt: number }[]>('/api/workers'),
    ]);
    renderJobs(jobs);
    $('workers').querySelector('tbody')!.replaceChildren(
      ...workers.map((w) => {
        const tr = document.createElement('tr');
        tr.append(cell(w.workerId), cell(w.capabilities.runtime), cell(w.capabilities.backend), cell(w.capabilities.adapter ? `${w.capabilities.adapter.vendor} ${w.capabilities.adapter.architecture}` : '–'), cell(w.jobId ?? '–'), cell(new Date(w.connectedAt).toLocaleTimeString()));
        return tr;
      }),
    );
    if (jobs[0]) await renderChart(jobs[0].id);
    $('updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    $('updated').textContent = `coordinator unreachable (${(err as Error).message}); data may be stale`;
  }
}

$('signin-form').addEventListener('submit', (e) => {
  e.preventDefault();
  void signIn($<HTMLInputElement>("token").value.trim()).then((ok) => { if (ok) void refresh(); });
});

if (await signIn(token)) {
  await refresh();
}
setInterval(() => {
  if (!$('app').classList.contains('hidden')) void refresh();
}, 2000);
