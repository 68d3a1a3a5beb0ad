// Dashboard controller: sign-in (token from the printed URL's #token= or the form; nothing admin is
// shown or fetched without it), the jobs overview, the create-job form and the live job page,
// all fed by pushes on the /admin socket. Renders at most once per animation frame and records
// each push's coordinator-event -> painted latency (window.flockAdmin, read by the e2e journey).

import { ApiError, adoptTokenFromHash, api, downloadWithToken, getToken, setToken } from './session.ts';
import { LiveLink, type LinkState } from './live.ts';
import { JobCharts, reasonName } from './job-charts.ts';
import { VirtualTable, type Column } from './virtual-table.ts';
import { clock, dateTime, duration, int, num, pct } from '../common/format.ts';
import type { AggregationInput, AggregationMode, DemoInfo, EvalPoint, JobDelta, JobSnapshot, JobView, JobsOverview, LossPoint, TelemetryPoint, WorkerRow } from '../../shared/protocol/admin.ts';

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing`);
  return el as T;
};
const show = (id: string, on: boolean): void => void $(id).classList.toggle('hidden', !on);
/** Test accuracy for classification jobs, test MAE for regression ones. */
const headlineMetric = (j: JobView): string =>
  j.task === 'regression' ? (j.metrics.testMae == null ? '–' : `MAE ${j.metrics.testMae.toPrecision(4)}`) : pct(j.metrics.testAccuracy);

// ---- what automation reads ---------------------------------------------------------------------

interface AdminProbe {
  link: LinkState['kind'];
  jobs: JobView[];
  job: JobView | null;
  evaluations: number;
  workersRows: number;
  renderedRows: { first: number; last: number };
  /** ms from the first change folded into a push (at the coordinator) to the frame after it was drawn. */
  eventToPaint: number[];
  /** ms from the coordinator sending a push to the frame after it was drawn. */
  sendToPaint: number[];
  deltas: number;
}
const probe: AdminProbe = { link: 'connecting', jobs: [], job: null, evaluations: 0, workersRows: 0, renderedRows: { first: 0, last: 0 }, eventToPaint: [], sendToPaint: [], deltas: 0 };
(window as unknown as { flockAdmin: AdminProbe }).flockAdmin = probe;

// ---- state -------------------------------------------------------------------------------------

interface JobState {
  view: JobView;
  evals: EvalPoint[];
  loss: LossPoint[];
  telemetry: TelemetryPoint[];
  staleness: number[];
  workers: Map<string, WorkerRow>;
}

let jobs: JobView[] = [];
let current: JobState | null = null;
let route: { page: 'overview' } | { page: 'job'; id: string } = { page: 'overview' };
let signedIn = false;
let linkState: LinkState = { kind: 'connecting' };
const dirty = { overview: false, job: false, evals: false, loss: false, telemetry: false, staleness: false, workers: false };
/** Stamps of pushes drawn in the coming frame: [eventAt, sentAt]. */
let pendingStamps: [number, number][] = [];
let frame = 0;

const charts = new JobCharts({ acc: $('ch-acc'), train: $('ch-train'), tput: $('ch-tput'), upd: $('ch-upd'), stale: $('ch-stale') });

// ---- live link ---------------------------------------------------------------------------------

const live = new LiveLink({
  state(s) {
    linkState = s;
    probe.link = s.kind;
    if (s.kind === 'refused') return signOut('That token was refused.');
    if (s.kind === 'live' && !signedIn) enterApp();
    renderLink();
  },
  overview(o: JobsOverview) {
    jobs = [...o.jobs];
    probe.jobs = jobs;
    dirty.overview = true;
    schedule(o.eventAt, o.sentAt);
  },
  snapshot(s: JobSnapshot) {
    current = { view: s.job, evals: [...s.evaluations], loss: [...s.trainLoss], telemetry: [...s.telemetry], staleness: [...s.staleness], workers: new Map(s.workers.map((w) => [w.workerId, w])) };
    Object.assign(dirty, { job: true, evals: true, loss: true, telemetry: true, staleness: true, workers: true });
    void loadCheckpoints();
    schedule(null, s.sentAt);
  },
  delta(d: JobDelta) {
    if (!current || current.view.id !== d.jobId) return;
    probe.deltas++;
    mergeDelta(current, d);
    schedule(d.eventAt, d.sentAt);
  },
  watchFailed(_jobId, message) {
    $('j-name').textContent = 'Job not found';
    $('j-desc').textContent = message;
  },
});

function mergeDelta(st: JobState, d: JobDelta): void {
  const lastCk = st.view.lastCheckpointVersion;
  st.view = d.job;
  dirty.job = true;
  const lastEvalAt = st.evals.at(-1)?.at ?? -Infinity;
  const evals = d.evaluations.filter((e) => e.at > lastEvalAt);
  if (evals.length) {
    st.evals.push(...evals);
    dirty.evals = true;
  }
  const lastLoss = st.loss.at(-1)?.version ?? -Infinity;
  const loss = d.trainLoss.filter((p) => p.version > lastLoss);
  if (loss.length) {
    st.loss.push(...loss);
    if (st.loss.length > 8000) st.loss.splice(0, st.loss.length - 8000);
    dirty.loss = true;
  }
  const lastT = st.telemetry.at(-1)?.at ?? -Infinity;
  const tel = d.telemetry.filter((p) => p.at > lastT);
  if (tel.length) {
    st.telemetry.push(...tel);
    if (st.telemetry.length > 4000) st.telemetry.splice(0, st.telemetry.length - 4000);
    dirty.telemetry = true;
  }
  if (d.staleness.join() !== st.staleness.join()) {
    st.staleness = [...d.staleness];
    dirty.staleness = true;
  }
  if (d.workers) {
    if (d.workers.full) st.workers.clear();
    for (const r of d.workers.rows) st.workers.set(r.workerId, r);
    for (const id of d.workers.removed) st.workers.delete(id);
    dirty.workers = true;
  }
  if (d.job.lastCheckpointVersion !== lastCk) void loadCheckpoints();
}

// ---- rendering (one frame at a time) -----------------------------------------------------------

function schedule(eventAt: number | null, sentAt: number): void {
  if (eventAt !== null) pendingStamps.push([eventAt, sentAt]);
  if (frame) return;
  frame = requestAnimationFrame(() => {
    frame = 0;
    render();
    const stamps = pendingStamps;
    pendingStamps = [];
    // The next frame starts after this one was painted: that is "on screen".
    if (stamps.length)
      requestAnimationFrame(() => {
        const now = Date.now();
        for (const [ev, sent] of stamps) {
          probe.eventToPaint.push(now - ev);
          probe.sendToPaint.push(now - sent);
        }
        if (probe.eventToPaint.length > 5000) probe.eventToPaint.splice(0, 1000);
        if (probe.sendToPaint.length > 5000) probe.sendToPaint.splice(0, 1000);
      });
  });
}

function render(): void {
  if (!signedIn) return;
  if (dirty.overview) renderOverview();
  if (route.page === 'job' && current) renderJob(current);
  for (const k of Object.keys(dirty) as (keyof typeof dirty)[]) dirty[k] = false;
}

function renderLink(): void {
  const s = linkState;
  const trying = signedIn || getToken() !== '';
  const conn = $('conn');
  conn.className = `conn ${s.kind}` + (trying && s.kind !== 'refused' ? '' : ' hidden');
  conn.textContent = s.kind === 'live' ? 'live' : s.kind === 'stale' ? 'reconnecting…' : 'connecting…';
  const stale = s.kind === 'stale' && trying;
  document.body.classList.toggle('is-stale', stale && signedIn);
  show('stale', stale);
  if (s.kind === 'stale') {
    $('stale').textContent = signedIn
      ? `Lost the connection to the coordinator at ${clock(s.since)}: the figures below may be stale${s.lastDataAt ? ` (last update ${clock(s.lastDataAt)})` : ''}. Reconnecting…`
      : 'Cannot reach the coordinator. Retrying…';
  }
}

// ---- overview ----------------------------------------------------------------------------------

/** Estimated time left, from the progress made per running millisecond (none without workers). */
function eta(j: JobView): number | null {
  if (j.status !== 'running' || j.workers === 0 || j.progress <= 0.005 || j.activeMs < 5000) return null;
  return (j.activeMs * (1 - j.progress)) / j.progress;
}
/** No workers, no rate and no estimate: a dash, never a stale or made-up figure. */
const NONE = '—';
const spsText = (j: JobView): string => (j.status === 'running' && j.workers > 0 ? int(j.samplesPerSec) : NONE);
function etaText(j: JobView): string {
  if (j.status === 'finished') return 'done';
  if (j.status !== 'running') return NONE;
  if (j.workers === 0) return NONE;
  const left = eta(j);
  return left === null ? 'estimating…' : duration(left);
}
const elapsed = (j: JobView): number => j.activeMs;
const stopText = (j: JobView): string => `${j.maxEpochs} epoch${j.maxEpochs === 1 ? '' : 's'}` + (j.targetAccuracy != null ? ` or ${pct(j.targetAccuracy, 1)}` : '');

function td(text: string, cls?: string): HTMLTableCellElement {
  const c = document.createElement('td');
  c.textContent = text;
  if (cls) c.className = cls;
  return c;
}

function progressCell(j: JobView): HTMLTableCellElement {
  const c = document.createElement('td');
  const bar = document.createElement('div');
  bar.className = 'bar';
  bar.setAttribute('role', 'progressbar');
  bar.setAttribute('aria-valuemin', '0');
  bar.setAttribute('aria-valuemax', '100');
  bar.setAttribute('aria-valuenow', String(Math.round(j.progress * 100)));
  bar.setAttribute('aria-label', `${j.name} progress`);
  const fill = document.createElement('span');
  fill.style.width = `${(j.progress * 100).toFixed(1)}%`;
  bar.append(fill);
  const note = document.createElement('div');
  note.className = 'muted small';
  note.textContent = `${Math.round(j.progress * 100)}% · epoch ${j.epoch}/${j.maxEpochs}` + (j.targetAccuracy != null ? ` · target ${pct(j.targetAccuracy, 1)}` : '');
  c.append(bar, note);
  return c;
}

/** "buffered x6 centered-clip", "async", "local 8 steps": the jobs table's reminder of the mode. */
function aggregationShort(a: JobView['aggregation']): string {
  if (a.mode === 'async') return 'async';
  return a.mode === 'buffered' ? `buffered x${a.bufferSize} ${a.rule}` : `local ${a.localSteps ?? '?'} steps`;
}

function renderOverview(): void {
  const body = $('jobs').querySelector('tbody')!;
  show('no-jobs', jobs.length === 0);
  body.replaceChildren(
    ...jobs.map((j) => {
      const tr = document.createElement('tr');
      const name = document.createElement('td');
      const a = document.createElement('a');
      a.href = `#/job/${encodeURIComponent(j.id)}`;
      a.textContent = j.name;
      const id = document.createElement('div');
      id.className = 'muted small';
      id.textContent = `${j.id} · ${aggregationShort(j.aggregation)}`;
      id.title = `aggregation: ${j.aggregation.text}`;
      name.append(a, id);
      const status = document.createElement('td');
      const b = document.createElement('span');
      b.className = `badge ${j.status}`;
      b.textContent = j.status;
      status.append(b);
      tr.append(
        name,
        status,
        progressCell(j),
        td(headlineMetric(j), 'num'),
        td(j.metrics.testLoss == null ? '–' : j.metrics.testLoss.toFixed(4), 'num'),
        td(int(j.workers), 'num'),
        td(spsText(j), 'num'),
        td(dateTime(j.createdAt)),
        td(duration(elapsed(j)), 'num'),
        td(etaText(j), 'num'),
      );
      return tr;
    }),
  );
}

// ---- job page ----------------------------------------------------------------------------------

const WORKER_COLUMNS: Column<WorkerRow>[] = [
  { key: 'id', label: 'Worker', sortValue: (r) => r.workerId, text: (r) => r.workerId },
  { key: 'backend', label: 'Backend', sortValue: (r) => r.backend, text: (r) => `${r.backend}${r.runtime === 'node' ? ' (node)' : ''}` },
  { key: 'adapter', label: 'Adapter', sortValue: (r) => r.adapter, text: (r) => r.adapter ?? '–' },
  { key: 'probe', label: 'Probe', title: 'Gradient-step speed measured by the worker at start, samples/s', numeric: true, sortValue: (r) => r.probeSamplesPerSec, text: (r) => int(r.probeSamplesPerSec) },
  { key: 'sps', label: 'Samples/s', title: 'Over its recent leases, end to end', numeric: true, sortValue: (r) => r.samplesPerSec, text: (r) => int(r.samplesPerSec) },
  { key: 'leases', label: 'Leases done', numeric: true, sortValue: (r) => r.leasesDone, text: (r) => int(r.leasesDone) },
  { key: 'accepted', label: 'Accepted', numeric: true, sortValue: (r) => r.accepted, text: (r) => int(r.accepted) },
  { key: 'refused', label: 'Refused', numeric: true, sortValue: (r) => r.refused, text: (r) => int(r.refused) },
  { key: 'stale', label: 'Mean staleness', title: 'Versions between lease and update, averaged over accepted gradients', numeric: true, sortValue: (r) => r.meanStaleness, text: (r) => (r.meanStaleness == null ? '–' : r.meanStaleness.toFixed(1)) },
  { key: 'since', label: 'Connected since', sortValue: (r) => r.connectedAt, text: (r) => `${clock(r.connectedAt)} (${duration(Date.now() - r.connectedAt)})` },
];
const workersTable = new VirtualTable<WorkerRow>($('w-scroll'), $<HTMLTableElement>('w-table'), WORKER_COLUMNS, {
  initialSort: { key: 'sps', dir: -1 },
  onRender: ({ total, first, last }) => {
    probe.workersRows = total;
    probe.renderedRows = { first, last };
    $('w-info').textContent = total === 0 ? 'no workers connected' : `${total.toLocaleString('en-US')} worker${total === 1 ? '' : 's'}` + (total > last - first ? ` · rows ${first + 1}–${last} drawn` : '');
  },
});

function text(id: string, t: string): void {
  const el = $(id);
  if (el.textContent !== t) el.textContent = t;
}

function renderJob(st: JobState): void {
  const j = st.view;
  probe.job = j;
  probe.evaluations = st.evals.length;
  if (dirty.job) {
    text('j-name', j.name);
    const badge = $('j-status');
    badge.className = `badge ${j.status}`;
    badge.textContent = j.status;
    text('j-desc', `${j.description}  (id ${j.id}, ${j.optimizer}, batch ${j.batchSize}, aggregation: ${j.aggregation.text})`);
    const live = j.status === 'running' || j.status === 'paused';
    show('j-pause', j.status === 'running');
    show('j-resume', j.status === 'paused');
    ($('j-cancel') as HTMLButtonElement).disabled = !live;
    text('k-acc', headlineMetric(j));
    text('k-acc-v', st.evals.length ? `at v${st.evals.at(-1)!.version}` : 'not evaluated yet');
    text('k-loss', j.metrics.testLoss == null ? '–' : j.metrics.testLoss.toFixed(4));
    text('k-version', int(j.version));
    text('k-workers', int(j.workers));
    text('k-sps', spsText(j));
    text('k-sps-note', j.status === 'running' && j.workers === 0 ? 'no workers connected' : '');
    text('k-progress', `${Math.round(j.progress * 100)}%`);
    text('k-epoch', `epoch ${j.epoch} of ${j.maxEpochs}`);
    text('k-elapsed', duration(j.activeMs));
    text('k-started', `since ${dateTime(j.createdAt)}, pauses excluded`);
    text('k-eta', j.status === 'running' || j.status === 'finished' ? etaText(j) : j.status);
    text('k-eta-note', j.status === 'running' && j.workers === 0 ? 'no estimate without workers' : '');
    text('k-stop', `stop: ${stopText(j)}`);
    text('shards-h', j.status === 'finished' && j.shards.done === j.shards.perEpoch ? 'Shards: every epoch done' : j.status === 'running' || j.status === 'paused' ? `Shards of epoch ${j.epoch}` : `Shards of epoch ${j.epoch} when it stopped`);
    const share = `${location.origin}/?job=${encodeURIComponent(j.id)}`;
    const shareEl = $<HTMLAnchorElement>('j-share');
    if (shareEl.href !== share) {
      shareEl.href = share;
      shareEl.textContent = share;
    }
    text('j-share-note', live ? 'Send this link to volunteers: it opens the volunteer page on this job.' : `This job is ${j.status}: the link shows volunteers that it is over and offers the running jobs.`);
    const total = Math.max(1, j.shards.perEpoch);
    const bar = $('shard-bar');
    (bar.children[0] as HTMLElement).style.width = `${(100 * j.shards.done) / total}%`;
    (bar.children[1] as HTMLElement).style.width = `${(100 * j.shards.leased) / total}%`;
    bar.setAttribute('aria-label', `${j.shards.done} done, ${j.shards.leased} leased, ${j.shards.waiting} waiting of ${j.shards.perEpoch}`);
    text('s-done', int(j.shards.done));
    text('s-leased', int(j.shards.leased));
    text('s-waiting', int(j.shards.waiting));
    text('s-total', int(j.shards.perEpoch));
    text('set-info', `now: learning rate ${num(j.learningRate)}, staleness bound ${j.maxStaleness} (${j.stalenessRule} scaling), priority weight ${num(j.weight)}`);
    const setLr = $<HTMLInputElement>('set-lr');
    const setSt = $<HTMLInputElement>('set-stale');
    const setW = $<HTMLInputElement>('set-weight');
    if (document.activeElement !== setLr && !setLr.dataset.edited) setLr.value = String(j.learningRate);
    if (document.activeElement !== setSt && !setSt.dataset.edited) setSt.value = String(j.maxStaleness);
    if (document.activeElement !== setW && !setW.dataset.edited) setW.value = String(j.weight);
    for (const el of [setLr, setSt, setW, $('settings').querySelector('button')!] as HTMLInputElement[]) el.disabled = !live;
    const refused = Object.entries(j.updates.refused).filter(([, n]) => n > 0);
    text('upd-totals', `total: ${int(j.updates.applied)} applied` + (refused.length ? ' · refused: ' + refused.map(([c, n]) => `${int(n)} ${reasonName(c)}`).join(', ') : ' · none refused'));
  }
  if (dirty.evals || dirty.loss || dirty.telemetry || dirty.staleness) {
    charts.update({ evals: st.evals, loss: st.loss, telemetry: st.telemetry, staleness: st.staleness }, { evals: dirty.evals, loss: dirty.loss, telemetry: dirty.telemetry, staleness: dirty.staleness });
  }
  if (dirty.workers) {
    workersTable.setRows([...st.workers.values()]);
    workersTable.render();
  }
}

interface CheckpointInfo {
  version: number;
  createdAt: number;
  testAccuracy: number | null;
  testLoss: number | null;
  evaluatedVersion: number | null;
  latest: boolean;
  best: boolean;
  /** 'best' for the best checkpoint when keep-last-N has rotated it out of the kept ones. */
  which: 'latest' | 'kept' | 'best';
}

async function loadCheckpoints(): Promise<void> {
  if (!current) return;
  const id = current.view.id;
  try {
    const list = await api<CheckpointInfo[]>(`/api/jobs/${encodeURIComponent(id)}/checkpoints`);
    if (current?.view.id !== id) return;
    // Both links of a pair name one checkpoint, so model.json and its weights always match.
    const pair = (version: number, model: HTMLAnchorElement, weights: HTMLAnchorElement, best = false): void => {
      const base = `/api/jobs/${encodeURIComponent(id)}/model`;
      model.href = best ? `${base}/model.json?which=best` : `${base}/model.json?version=${version}`;
      model.download = 'model.json';
      const file = best ? `weights-best-v${version}.bin` : `weights-v${version}.bin`;
      weights.href = `${base}/${file}`;
      weights.download = file;
    };
    const latest = list[0];
    if (latest) {
      pair(latest.version, $<HTMLAnchorElement>('dl-model'), $<HTMLAnchorElement>('dl-weights'));
      $('dl-weights').textContent = `weights-v${latest.version}.bin`;
      text('dl-latest-note', `(newest checkpoint, v${int(latest.version)})`);
    }
    const best = list.find((c) => c.best);
    show('dl-best-item', best !== undefined);
    if (best) {
      pair(best.version, $<HTMLAnchorElement>('dl-best-model'), $<HTMLAnchorElement>('dl-best-weights'), best.which === 'best');
      $('dl-best-weights').textContent = $<HTMLAnchorElement>('dl-best-weights').download;
      const metric = current.view.best?.metric === 'testLoss' ? `test loss ${best.testLoss?.toFixed(4) ?? '–'}` : `${pct(best.testAccuracy)} test accuracy`;
      text('dl-best-note', `(best by ${current.view.best?.metric === 'testLoss' ? 'test loss' : 'test accuracy'}: v${int(best.version)}, ${metric}; kept whatever is pruned)`);
    }
    $('ckpts').replaceChildren(
      ...list.map((c) => {
        const tr = document.createElement('tr');
        tr.dataset.version = String(c.version);
        tr.dataset.which = [c.latest ? 'latest' : '', c.best ? 'best' : ''].filter(Boolean).join(' ') || 'kept';
        const acc = c.testAccuracy == null ? '–' : pct(c.testAccuracy) + (c.evaluatedVersion !== c.version ? ` (v${c.evaluatedVersion})` : '');
        const links = document.createElement('td');
        const m = document.createElement('a');
        m.textContent = 'model.json';
        m.className = 'ck-model';
        const w = document.createElement('a');
        w.textContent = 'weights';
        w.className = 'ck-weights';
        pair(c.version, m, w, c.which === 'best');
        links.append(m, ' + ', w);
        const which = [c.latest ? 'newest' : '', c.best ? 'best' : ''].filter(Boolean).join(', ');
        tr.append(td(`v${int(c.version)}`, 'num'), td(which || 'kept'), td(dateTime(c.createdAt)), td(acc, 'num'), td(c.testLoss == null ? '–' : c.testLoss.toFixed(4), 'num'), links);
        return tr;
      }),
    );
  } catch {
    /* shown as before; the next checkpoint change retries */
  }
}

// ---- routing -----------------------------------------------------------------------------------

function parseRoute(): typeof route {
  const m = /^#\/job\/(.+)$/.exec(location.hash);
  return m ? { page: 'job', id: decodeURIComponent(m[1]!) } : { page: 'overview' };
}

function applyRoute(): void {
  route = parseRoute();
  const onJob = route.page === 'job';
  show('overview', signedIn && !onJob);
  show('job', signedIn && onJob);
  if (route.page === 'job') {
    if (current?.view.id !== route.id) {
      current = null;
      charts.reset();
      workersTable.setRows([]);
      $('ckpts').replaceChildren();
      for (const id of ['set-lr', 'set-stale', 'set-weight']) delete $(id).dataset.edited;
      text('j-name', route.id);
    }
    live.watch(route.id);
    document.title = `Flock — ${route.id}`;
  } else {
    live.watch(null);
    current = null;
    document.title = 'Flock — dashboard';
    dirty.overview = true;
    schedule(null, Date.now());
  }
}
addEventListener('hashchange', () => {
  // The printed sign-in URL pasted into a tab already on the dashboard: only the hash changes.
  if (/[#&]token=/.test(location.hash)) {
    adoptTokenFromHash();
    live.connect(getToken());
    return;
  }
  applyRoute();
});

// ---- sign-in -----------------------------------------------------------------------------------

function enterApp(): void {
  signedIn = true;
  show('signin', false);
  show('signout', true);
  applyRoute();
  renderLink();
}

function signOut(message: string | null): void {
  live.close();
  signedIn = false;
  setToken('');
  show('signin', true);
  show('signout', false);
  show('overview', false);
  show('job', false);
  show('stale', false);
  document.body.classList.remove('is-stale');
  const err = $('signin-error');
  err.textContent = message ?? '';
  err.classList.toggle('hidden', !message);
  jobs = [];
  current = null;
  renderLink();
  $<HTMLInputElement>('token').focus();
}

$('signin-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const t = $<HTMLInputElement>('token').value.trim();
  if (!t) return;
  setToken(t);
  live.connect(t);
});
$('signout').addEventListener('click', () => signOut(null));

// ---- controls ----------------------------------------------------------------------------------

function confirmDialog(title: string, body: string, yes: string): Promise<boolean> {
  const d = $<HTMLDialogElement>('confirm');
  $('confirm-h').textContent = title;
  $('confirm-text').textContent = body;
  $('confirm-yes').textContent = yes;
  d.returnValue = '';
  d.showModal();
  return new Promise((resolve) => d.addEventListener('close', () => resolve(d.returnValue === 'yes'), { once: true }));
}

async function control(action: 'pause' | 'resume' | 'cancel'): Promise<void> {
  if (!current) return;
  const j = current.view;
  if (action === 'cancel' && !(await confirmDialog(`Cancel “${j.name}”?`, 'Workers stop at once and the job cannot be resumed. Its checkpoints and metrics stay available for download.', 'Cancel the job'))) return;
  try {
    await api(`/api/jobs/${encodeURIComponent(j.id)}/${action}`, { method: 'POST' });
  } catch (err) {
    alertError(err);
  }
}
$('j-pause').addEventListener('click', () => void control('pause'));
$('j-resume').addEventListener('click', () => void control('resume'));
$('j-cancel').addEventListener('click', () => void control('cancel'));
$('j-share-copy').addEventListener('click', () => {
  const link = $<HTMLAnchorElement>('j-share').href;
  const done = (ok: boolean): void => text('j-share-copied', ok ? 'copied' : 'select the link and copy it');
  if (navigator.clipboard) navigator.clipboard.writeText(link).then(() => done(true), () => done(false));
  else done(false);
});

function alertError(err: unknown): void {
  const msg = err instanceof ApiError ? `${err.message} (${err.code})` : String(err);
  $('set-info').textContent = `Failed: ${msg}`;
}

for (const id of ['set-lr', 'set-stale', 'set-weight']) $(id).addEventListener('input', () => ($(id).dataset.edited = '1'));
$('settings').addEventListener('submit', async (e) => {
  e.preventDefault();
  if (!current) return;
  const lr = Number($<HTMLInputElement>('set-lr').value);
  const bound = Number($<HTMLInputElement>('set-stale').value);
  const weight = Number($<HTMLInputElement>('set-weight').value);
  try {
    await api(`/api/jobs/${encodeURIComponent(current.view.id)}/settings`, { method: 'POST', body: { learningRate: lr, maxStaleness: bound, weight } });
    for (const id of ['set-lr', 'set-stale', 'set-weight']) delete $(id).dataset.edited;
  } catch (err) {
    alertError(err);
  }
});

$('dl-csv').addEventListener('click', () => {
  if (current) void downloadWithToken(`/api/jobs/${encodeURIComponent(current.view.id)}/history.csv`, `${current.view.id}-history.csv`).catch(alertError);
});
$('dl-json').addEventListener('click', () => {
  if (current) void downloadWithToken(`/api/jobs/${encodeURIComponent(current.view.id)}/history.json`, `${current.view.id}-history.json`).catch(alertError);
});
for (const r of document.querySelectorAll<HTMLInputElement>('input[name="acc-x"]')) {
  r.addEventListener('change', () => {
    charts.setAccuracyAxis(r.value === 'time' ? 'time' : 'version');
    dirty.evals = true;
    schedule(null, Date.now());
  });
}

// ---- create a job ------------------------------------------------------------------------------

let demos: DemoInfo[] = [];

function fillDemo(name: string): void {
  const d = demos.find((x) => x.name === name);
  if (!d) return;
  $<HTMLInputElement>('c-name').value = d.title.replace(/\s*\(.*\)$/, '');
  $<HTMLInputElement>('c-lr').value = String(d.settings.learningRate);
  $<HTMLInputElement>('c-batch').value = String(d.settings.batchSize);
  $<HTMLInputElement>('c-stale').value = String(d.settings.maxStaleness);
  $<HTMLInputElement>('c-epochs').value = String(d.settings.maxEpochs);
  $<HTMLInputElement>('c-target').value = d.settings.targetAccuracy == null ? '' : String(d.settings.targetAccuracy * 100);
  $('c-demo-desc').textContent = d.description;
  $<HTMLSelectElement>('c-agg-mode').value = d.aggregation.mode;
  $<HTMLSelectElement>('c-agg-rule').value = d.aggregation.rule;
  $<HTMLInputElement>('c-agg-k').value = String(d.aggregation.bufferSize);
  $<HTMLInputElement>('c-agg-h').value = String(d.aggregation.localSteps);
  showAggregation();
}

/** One line per mode, as the README's "Aggregation modes" table puts it. */
const AGGREGATION_HELP: Record<AggregationMode, string> = {
  buffered: 'K gradients make one step; the robust rules clip each, so a minority of bad ones per buffer cannot wreck the model.',
  async: 'Every gradient is one step: the fastest per sample, but one bad volunteer can wreck the model. Trusted fleets only.',
  local: 'Each lease is H steps on the volunteer; the mean of 2 such updates makes one outer step: H times fewer messages.',
};

function aggregationMode(): AggregationMode {
  const v = $<HTMLSelectElement>('c-agg-mode').value;
  return v === 'async' || v === 'local' ? v : 'buffered';
}

/** Shows (and enables, so validation sees only them) the fields of the chosen mode. */
function showAggregation(): void {
  const mode = aggregationMode();
  $('c-agg-help').textContent = AGGREGATION_HELP[mode];
  for (const el of $('c-aggregation').querySelectorAll<HTMLElement>('[data-agg]')) {
    const on = el.dataset.agg === mode;
    el.classList.toggle('hidden', !on);
    if (el instanceof HTMLInputElement || el instanceof HTMLSelectElement) el.disabled = !on;
  }
}
$('c-agg-mode').addEventListener('change', showAggregation);

/** The `aggregation` of the create request: the mode and the options the form shows for it. */
function aggregationInput(): AggregationInput {
  const mode = aggregationMode();
  if (mode === 'async') return { mode };
  if (mode === 'local') return { mode, localSteps: Number($<HTMLInputElement>('c-agg-h').value) };
  const rule = $<HTMLSelectElement>('c-agg-rule').value as NonNullable<AggregationInput['rule']>;
  return { mode, rule, bufferSize: Number($<HTMLInputElement>('c-agg-k').value) };
}

async function openCreate(): Promise<void> {
  show('create', true);
  $('new-job').setAttribute('aria-expanded', 'true');
  $('c-error').textContent = '';
  if (!demos.length) {
    try {
      demos = await api<DemoInfo[]>('/api/demos');
    } catch (err) {
      $('c-error').textContent = `Cannot load the demos: ${(err as Error).message}`;
      return;
    }
    const sel = $<HTMLSelectElement>('c-demo');
    sel.replaceChildren(...demos.map((d) => new Option(d.title, d.name)));
  }
  fillDemo($<HTMLSelectElement>('c-demo').value);
  $<HTMLSelectElement>('c-demo').focus();
}
function closeCreate(): void {
  show('create', false);
  $('new-job').setAttribute('aria-expanded', 'false');
}
$('new-job').addEventListener('click', () => ($('create').classList.contains('hidden') ? void openCreate() : closeCreate()));
$('c-cancel').addEventListener('click', closeCreate);
$('c-demo').addEventListener('change', () => fillDemo($<HTMLSelectElement>('c-demo').value));
/** Which source the create form is on: a built-in demo (settings editable) or a job file upload. */
function sourceKind(): 'demo' | 'file' {
  return ($('create').querySelector<HTMLInputElement>('input[name="source"]:checked')?.value ?? 'demo') === 'file' ? 'file' : 'demo';
}
for (const radio of $('create').querySelectorAll<HTMLInputElement>('input[name="source"]')) {
  radio.addEventListener('change', () => {
    const file = sourceKind() === 'file';
    show('c-file-block', file);
    show('c-settings', !file);
    show('c-aggregation', !file);
    $<HTMLSelectElement>('c-demo').disabled = file;
    show('c-demo-desc', !file);
  });
}

/**
 * A job file and the files it names as one multipart body: each file's part is named by its path
 * relative to the job file (a chosen folder's own name is dropped: the job file sits in it).
 */
async function jobFileForm(): Promise<FormData> {
  const jobFile = $<HTMLInputElement>('c-jobfile').files?.[0];
  if (!jobFile) throw new ApiError(400, 'BAD_JOB_FILE', 'choose the job file (JSON)', 'job file');
  const form = new FormData();
  form.append('job', await jobFile.text());
  const seen = new Set<string>();
  const add = (f: File, rel: string): void => {
    if (f === jobFile || rel === jobFile.name || seen.has(rel)) return;
    seen.add(rel);
    form.append(rel, f, f.name);
  };
  for (const f of $<HTMLInputElement>('c-folder').files ?? []) add(f, f.webkitRelativePath.split('/').slice(1).join('/') || f.name);
  for (const f of $<HTMLInputElement>('c-files').files ?? []) add(f, f.name);
  return form;
}

$('create').addEventListener('submit', async (e) => {
  e.preventDefault();
  const form = $<HTMLFormElement>('create');
  $('c-error').textContent = '';
  $('c-file-error').textContent = '';
  if (sourceKind() === 'file') {
    try {
      $('c-error').textContent = 'Uploading and checking the job…';
      const job = await api<JobView>('/api/jobs', { method: 'POST', body: await jobFileForm() });
      $('c-error').textContent = '';
      closeCreate();
      location.hash = `#/job/${encodeURIComponent(job.id)}`;
    } catch (err) {
      $('c-error').textContent = '';
      const field = err instanceof ApiError && err.field ? `${err.field}: ` : '';
      $('c-file-error').textContent = field + (err instanceof Error ? err.message : String(err));
    }
    return;
  }
  if (!form.reportValidity()) return;
  const targetRaw = $<HTMLInputElement>('c-target').value.trim();
  const body = {
    source: { kind: 'demo', demo: $<HTMLSelectElement>('c-demo').value },
    settings: {
      name: $<HTMLInputElement>('c-name').value.trim() || undefined,
      learningRate: Number($<HTMLInputElement>('c-lr').value),
      batchSize: Number($<HTMLInputElement>('c-batch').value),
      maxStaleness: Number($<HTMLInputElement>('c-stale').value),
      maxEpochs: Number($<HTMLInputElement>('c-epochs').value),
      targetAccuracy: targetRaw === '' ? null : Number(targetRaw) / 100,
      aggregation: aggregationInput(),
    },
  };
  try {
    const job = await api<JobView>('/api/jobs', { method: 'POST', body });
    closeCreate();
    location.hash = `#/job/${encodeURIComponent(job.id)}`;
  } catch (err) {
    $('c-error').textContent = err instanceof ApiError ? err.message : String(err);
  }
});

// ---- security panel (overview): refusals per worker, spot checks, credit ------------------------

interface SecurityReport {
  refusals: { totals: Record<string, number>; top: { who: string; counts: Record<string, number>; total: number }[] };
  spotChecks: { replicaLeases: number; agreed: number; mismatches: number; faults: number; pending: number; workers: { workerId: string; creditSamples: number; totalValidated: number; faults: number; quarantined: string | null }[] };
  messageCapBytes: number;
}

function cells(row: HTMLTableRowElement, values: readonly [string, string?][]): void {
  for (const [t, cls] of values) {
    const td = row.insertCell();
    td.textContent = t;
    if (cls) td.className = cls;
  }
}

async function loadSecurity(): Promise<void> {
  if (!signedIn || route.page !== 'overview') return;
  try {
    const r = await api<SecurityReport>('/api/security');
    const totals = Object.entries(r.refusals.totals);
    const s = r.spotChecks;
    text('sec-summary', `${totals.length ? 'refused: ' + totals.map(([c, n]) => `${int(n)} ${c}`).join(', ') : 'nothing refused'} · spot checks: ${int(s.replicaLeases)} replicas, ${int(s.agreed)} agreed, ${int(s.mismatches)} mismatched, ${int(s.faults)} faults, ${int(s.pending)} pending · message cap ${(r.messageCapBytes / 1e6).toFixed(1)} MB`);
    const ref = $<HTMLTableElement>('sec-refusals').tBodies[0]!;
    ref.replaceChildren();
    for (const t of r.refusals.top.slice(0, 20)) cells(ref.insertRow(), [[t.who], [int(t.total), 'num'], [Object.entries(t.counts).map(([c, n]) => `${int(n)} ${c}`).join(', ')]]);
    const cr = $<HTMLTableElement>('sec-credit').tBodies[0]!;
    cr.replaceChildren();
    for (const w of s.workers.slice(0, 50)) cells(cr.insertRow(), [[w.workerId], [int(w.creditSamples), 'num'], [int(w.totalValidated), 'num'], [int(w.faults), 'num'], [w.quarantined ?? '–']]);
  } catch {
    text('sec-summary', 'security figures unavailable');
  }
}
setInterval(() => void loadSecurity(), 5000);

// ---- start -------------------------------------------------------------------------------------

// Relative times ("connected since", elapsed) age even without pushes: a cheap 1 s repaint.
setInterval(() => {
  if (!signedIn) return;
  if (route.page === 'job' && current) {
    dirty.job = true;
    workersTable.render();
  } else dirty.overview = true;
  schedule(null, Date.now());
}, 1000);

adoptTokenFromHash();
setTimeout(() => void loadSecurity(), 500);
if (getToken()) live.connect(getToken());
else signOut(null);
