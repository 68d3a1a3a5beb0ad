// Prometheus metrics (prom-client), on GET /metrics behind the admin token, or on a port of their
// own (FLOCK_METRICS_PORT, no token: bind it where only the scraper reaches). Owns one prom-client
// Registry (never the global one, so tests and several coordinators in one process stay apart) and
// the ack-latency histogram the transport feeds; everything else is read from the jobs and the
// connected workers when scraped, so the hot path pays one histogram observation per answer.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { JobRegistry } from '../jobs/registry.ts';
import type { WorkerInfo } from '../transport/socket-handlers.ts';

export interface MetricsDeps {
  readonly registry: JobRegistry;
  readonly workers: () => readonly WorkerInfo[];
  /** Sockets connected to the worker namespace (registered or not). */
  readonly connections: () => number;
  /** Worker events waiting for their turn (server/transport/work-turns.ts). */
  readonly waitingEvents?: () => number;
}

export class FlockMetrics {
  readonly register = new Registry();
  private readonly ackSeconds: Histogram<'event'>;
  private readonly answers: Counter<'event' | 'outcome'>;

  constructor(deps: MetricsDeps) {
    const register = this.register;
    // process_*, nodejs_eventloop_lag_seconds and nodejs_eventloop_lag_p99_seconds among them.
    collectDefaultMetrics({ register, eventLoopMonitoringPrecision: 10 });
    this.ackSeconds = new Histogram({
      name: 'flock_ack_latency_seconds',
      help: 'Time from a worker request arriving to its acknowledgement being sent, by event',
      labelNames: ['event'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers: [register],
    });
    this.answers = new Counter({ name: 'flock_requests_total', help: 'Worker requests answered, by event and outcome (ok or the error code)', labelNames: ['event', 'outcome'], registers: [register] });
    const jobs = (): ReturnType<JobRegistry['all']> => deps.registry.all();
    new Gauge({
      name: 'flock_updates_applied_total',
      help: 'Gradient updates applied, by job (a counter; exported as a gauge because it is read from the job)',
      labelNames: ['job'],
      registers: [register],
      collect() {
        this.reset();
        for (const j of jobs()) this.set({ job: j.id }, j.summary().updates.applied);
      },
    });
    new Gauge({
      name: 'flock_updates_refused_total',
      help: 'Gradient pushes refused, by job and error code',
      labelNames: ['job', 'code'],
      registers: [register],
      collect() {
        this.reset();
        for (const j of jobs()) for (const [code, n] of Object.entries(j.summary().updates.refused)) this.set({ job: j.id, code }, n);
      },
    });
    new Gauge({
      name: 'flock_bytes_total',
      help: 'Payload bytes moved for training, by job and direction (out: weights and shards to workers; in: gradients)',
      labelNames: ['job', 'direction'],
      registers: [register],
      collect() {
        this.reset();
        for (const j of jobs()) {
          const b = j.summary().bytes;
          this.set({ job: j.id, direction: 'out' }, b.down);
          this.set({ job: j.id, direction: 'in' }, b.up);
        }
      },
    });
    new Gauge({
      name: 'flock_queue_depth',
      help: 'Shards by state (leased = outstanding leases, waiting = not yet handed out this epoch), by job',
      labelNames: ['job', 'queue'],
      registers: [register],
      collect() {
        this.reset();
        for (const j of jobs()) {
          const s = j.summary().shards;
          this.set({ job: j.id, queue: 'leased' }, s.leased);
          this.set({ job: j.id, queue: 'waiting' }, s.waiting);
          this.set({ job: j.id, queue: 'quarantined' }, s.quarantined.length);
        }
      },
    });
    new Gauge({
      name: 'flock_worker_events_waiting',
      help: 'Worker requests received and waiting for their turn on the event loop (leases, pushes)',
      registers: [register],
      collect() {
        this.set(deps.waitingEvents?.() ?? 0);
      },
    });
    new Gauge({
      name: 'flock_model_version',
      help: 'Current weights version, by job',
      labelNames: ['job'],
      registers: [register],
      collect() {
        this.reset();
        for (const j of jobs()) this.set({ job: j.id }, j.currentVersion);
      },
    });
    new Gauge({
      name: 'flock_workers',
      help: 'Registered workers connected, by backend, runtime and job ("none": not on a job)',
      labelNames: ['backend', 'runtime', 'job'],
      registers: [register],
      collect() {
        this.reset();
        for (const w of deps.workers()) this.inc({ backend: w.capabilities.backend, runtime: w.capabilities.runtime, job: w.jobId ?? 'none' });
      },
    });
    new Gauge({
      name: 'flock_connections',
      help: 'Worker sockets connected (registered or not)',
      registers: [register],
      collect() {
        this.set(deps.connections());
      },
    });
  }

  /** The transport's hook: one answer of `event` took `ms`; outcome 'ok' or the error code. */
  observe(event: string, ms: number, outcome: string): void {
    this.ackSeconds.observe({ event }, ms / 1000);
    this.answers.inc({ event, outcome });
  }

  async text(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.register.contentType, body: await this.register.metrics() };
  }

  /** GET /metrics for the main server (the caller has checked the admin token). */
  async serve(res: ServerResponse): Promise<void> {
    const { contentType, body } = await this.text();
    res.writeHead(200, { 'Content-Type': contentType, 'Cache-Control': 'no-store' });
    res.end(body);
  }

  /** A bare server answering GET /metrics only, for FLOCK_METRICS_PORT. */
  ownServer(): Server {
    return createServer((req: IncomingMessage, res: ServerResponse) => {
      if (req.method === 'GET' && (req.url ?? '').split('?')[0] === '/metrics') {
        void this.serve(res);
        return;
      }
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('only GET /metrics here\n');
    });
  }
}
