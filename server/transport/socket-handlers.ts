// socket.io handlers for workers: each event waits its turn (work-turns.ts: arrival order, bounded
// event-loop turns) -> validate the payload -> call the job runtime -> answer an ack.
// Owns the per-connection worker record (id, capabilities, job) and nothing else.

import { safeAck } from './ack.ts';
import type { Server, Socket } from 'socket.io';
import { randomUUID } from 'node:crypto';
import type { ClientToServerEvents, ServerToClientEvents } from '../../shared/protocol/events.ts';
import { ErrorCode, fail, type Failure } from '../../shared/protocol/errors.ts';
import { PROTOCOL_VERSION, type GradientPush, type LeaseAck, type PushAck, type WorkerCapabilities } from '../../shared/protocol/messages.ts';
import {
  GradientPushSchema,
  HelloRequestSchema,
  JobGetRequestSchema,
  LeaseReleaseSchema,
  LeaseRequestSchema,
  RefuseJobSchema,
  parse,
} from '../../shared/protocol/schemas.ts';
import type { WorkerId } from '../leases/lease-manager.ts';
import type { JobRegistry } from '../jobs/registry.ts';
import type { JobRuntime, Logger } from '../jobs/job-runtime.ts';
import type { StateStore } from '../storage/state-store.ts';
import type { Clock } from '../../shared/clock.ts';
import { RefusalBook } from './refusals.ts';
import { RowCompressor } from './row-compression.ts';
import { JobAssigner } from './job-assignment.ts';
import { WorkTurns } from './work-turns.ts';
import type { SchedulerPolicy } from '../jobs/scheduler.ts';
import type { WorkerGate } from '../security/worker-guard.ts';
import type { CombinedEntry, CombinedHandler } from '../cluster/relay.ts';
import type { CombinedAnswer } from '../cluster/pre-aggregator.ts';

/** The acknowledgement payload type of a client->server event. */
type AckOf<K extends keyof ClientToServerEvents> = Parameters<Parameters<ClientToServerEvents[K]>[1]>[0];

export interface SocketData {
  workerId?: WorkerId;
  capabilities?: WorkerCapabilities;
  jobId?: string;
  connectedAt?: number;
  /** The client's address (FLOCK_TRUST_PROXY applied), set by the door (server/security/door.ts). */
  address?: string;
}

export type FlockServer = Server<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;
type FlockSocket = Socket<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;

export interface WorkerInfo {
  readonly workerId: WorkerId;
  readonly capabilities: WorkerCapabilities;
  readonly jobId: string | undefined;
  readonly connectedAt: number;
  /** Jobs this worker said it cannot train (never leased to it again). */
  readonly refusedJobs: readonly string[];
}

/**
 * Optional listener for what workers do, told after each answer (per-worker statistics, the
 * dashboard's live feed). Must be cheap: it runs on every lease and push.
 */
export interface TransportObserver {
  hello?(workerId: WorkerId, capabilities: WorkerCapabilities, connectedAt: number): void;
  joined?(workerId: WorkerId, jobId: string): void;
  leased?(workerId: WorkerId, jobId: string, ack: LeaseAck): void;
  pushed?(workerId: WorkerId, jobId: string, push: GradientPush, ack: PushAck): void;
  released?(workerId: WorkerId, jobId: string): void;
  left?(workerId: WorkerId, jobId: string | undefined): void;
  /** Every answer: how long from the request's arrival to its ack (ms), and 'ok' or the error code. */
  answered?(event: keyof ClientToServerEvents, ms: number, outcome: string): void;
}

export function attachWorkerHandlers(
  io: FlockServer, registry: JobRegistry, clock: Clock, log: Logger, observer: TransportObserver = {}, state?: StateStore, scheduling: Partial<SchedulerPolicy> = {}, gate?: WorkerGate,
  turns: WorkTurns = new WorkTurns(),
): { workers(): WorkerInfo[]; assigner: JobAssigner; pushCombined: CombinedHandler; wantsGradient: (leaseId: string) => boolean; turns: WorkTurns } {
  const room = (jobId: string): string => `job:${jobId}`;
  /** safeAck that also tells the observer how long the answer took and how it went. */
  const timedAck = <K extends keyof ClientToServerEvents>(event: K, rawAck: unknown): ((res: AckOf<K>) => void) => {
    const ack = safeAck<AckOf<K>>(rawAck);
    if (!observer.answered) return ack;
    const t0 = performance.now();
    return (res) => {
      ack(res);
      const r = res as { ok: boolean; code?: string };
      observer.answered?.(event, performance.now() - t0, r.ok ? 'ok' : (r.code ?? 'error'));
    };
  };
  /**
   * Every worker event past its parse runs as a task in `turns` (server/transport/work-turns.ts):
   * in arrival order, in event-loop turns of bounded length. A task that throws answers INTERNAL.
   */
  const inTurn = (ack: (res: Failure) => void, task: () => unknown, heavy?: () => boolean): void => {
    turns.run(task, heavy).catch((err: unknown) => {
      log.warn(`a worker request failed: ${(err as Error).stack ?? err}`);
      ack(fail(ErrorCode.Internal, 'coordinator error; ask again soon', 1000));
    });
  };
  const refusals = new RefusalBook();
  const rows = new RowCompressor();
  // Workers that name no job are placed by weighted fair share (server/jobs/scheduler.ts).
  const assigner = new JobAssigner(registry, refusals, clock, scheduling);
  for (const job of registry.all()) subscribe(job);
  registry.onAdded(subscribe);

  function subscribe(job: JobRuntime): void {
    job.onUpdate((u) => io.to(room(job.id)).emit('job:update', u));
  }

  io.on('connection', (socket: FlockSocket) => {
    socket.data.connectedAt = clock.now();

    const jobFor = (jobId: string | undefined): JobRuntime | undefined => (jobId ? registry.get(jobId) : registry.defaultJob());
    // No job named: the scheduler's choice; with no running job it can train, its job as it is
    // (the worker then waits or finishes as before), else the default.
    const placeUnpinned = (): JobRuntime | undefined =>
      assigner.pick(socket.data.workerId!) ?? (socket.data.jobId ? registry.get(socket.data.jobId) : undefined) ?? registry.defaultJob();

    const join = (job: JobRuntime): void => {
      const wid = socket.data.workerId!;
      if (socket.data.jobId && socket.data.jobId !== job.id) {
        registry.get(socket.data.jobId)?.workerLeft(wid);
        void socket.leave(room(socket.data.jobId));
      }
      const changed = socket.data.jobId !== job.id;
      socket.data.jobId = job.id;
      assigner.place(wid, job.id);
      job.workers.add(wid);
      void socket.join(room(job.id));
      if (changed) observer.joined?.(wid, job.id);
    };

    socket.on('worker:hello', (raw, rawAck) => {
      const ack = timedAck<'worker:hello'>('worker:hello', rawAck);
      inTurn(ack, () => {
        const msg = parse(HelloRequestSchema, raw);
        if (!msg.ok) return ack(fail(ErrorCode.BadRequest, msg.message));
        if (msg.value.protocol !== PROTOCOL_VERSION) {
          return ack(fail(ErrorCode.ProtocolMismatch, `coordinator speaks protocol ${PROTOCOL_VERSION}, worker ${msg.value.protocol}: reload the page`));
        }
        let credential: string | undefined;
        if (!socket.data.workerId) {
          // Keep the worker's own id across reconnections unless another live socket already uses it
          // (with a gate: only with the credential issued for it, else a new server-issued id).
          const wanted = msg.value.workerId;
          const inUse = (id: string): boolean => [...io.of('/').sockets.values()].some((s) => s !== socket && s.data.workerId === id);
          if (gate) ({ workerId: socket.data.workerId, credential } = gate.identify(wanted, msg.value.credential, inUse, socket.data.address ?? 'unknown'));
          else socket.data.workerId = (wanted && !inUse(wanted) ? wanted : `w-${randomUUID().slice(0, 8)}`) as WorkerId;
        }
        socket.data.capabilities = msg.value.capabilities;
        // With a gate, only workers that completed a lease have a durable record (fresh ids write nothing).
        if (state && (!gate || state.getWorker(socket.data.workerId))) {
          const prev = state.getWorker(socket.data.workerId);
          const now = clock.now();
          state.putWorker({
            workerId: socket.data.workerId,
            firstSeenAt: prev?.firstSeenAt ?? now,
            lastSeenAt: now,
            capabilities: msg.value.capabilities,
            leasesDone: prev?.leasesDone ?? 0,
            accepted: prev?.accepted ?? 0,
            refused: prev?.refused ?? 0,
            msPerSample: prev?.msPerSample ?? null,
          });
        }
        ack({ ok: true, workerId: socket.data.workerId, serverTime: clock.now(), ...(credential ? { credential } : {}) });
        observer.hello?.(socket.data.workerId, msg.value.capabilities, socket.data.connectedAt ?? clock.now());
      });
    });

    socket.on('job:get', (raw, rawAck) => {
      const ack = timedAck<'job:get'>('job:get', rawAck);
      inTurn(ack, () => {
        const msg = parse(JobGetRequestSchema, raw);
        if (!msg.ok) return ack(fail(ErrorCode.BadRequest, msg.message));
        if (!socket.data.workerId) return ack(fail(ErrorCode.NotRegistered, 'say worker:hello first'));
        const job = msg.value.jobId ? registry.get(msg.value.jobId) : placeUnpinned();
        if (!job) return ack(fail(ErrorCode.UnknownJob, msg.value.jobId ? `no job ${msg.value.jobId}` : 'no job yet', 5000));
        join(job);
        ack({ ok: true, job: job.descriptor() });
      });
    });

    socket.on('lease:request', (raw, rawAck) => {
      const ack = timedAck<'lease:request'>('lease:request', rawAck);
      inTurn(ack, () => {
        const msg = parse(LeaseRequestSchema, raw);
        if (!msg.ok) return ack(fail(ErrorCode.BadRequest, msg.message));
        const wid = socket.data.workerId;
        if (!wid) return ack(fail(ErrorCode.NotRegistered, 'say worker:hello first'));
        const job = jobFor(msg.value.jobId);
        if (!job) return ack(fail(ErrorCode.UnknownJob, 'no such job', 5000));
        if (msg.value.movable) {
          const to = assigner.reassignment(wid, job.id);
          if (to !== null) return ack(fail(ErrorCode.JobReassigned, `job ${to} needs this worker more than job ${job.id}; ask job:get`));
        }
        const refused = refusals.reason(wid, job.id);
        if (refused !== undefined) return ack(fail(ErrorCode.Unsupported, `this worker reported it cannot train job ${job.id}: ${refused}`));
        const gated = gate?.leaseRefusal(wid);
        if (gated) return ack(gated);
        join(job);
        const rowCodecs = socket.data.capabilities?.rowCodecs;
        // A relayed (cluster) socket has no `connected`; its gateway tells the owner when it is gone.
        const stillThere = (): boolean => (socket as { connected?: boolean }).connected !== false;
        const replica = gate?.replicaLease?.(wid, job.id); // a spot check (server/validation)
        if (replica) return void rows.forWire(replica, rowCodecs).then((r) => ack(r.ack), () => ack(replica));
        let res: LeaseAck;
        try {
          res = job.requestLease(wid, msg.value.cachedVersion, socket.data.capabilities?.codecs, msg.value.rowCache);
        } catch (err) {
          log.warn(`lease for ${wid} on job ${job.id} failed: ${(err as Error).stack ?? err}`);
          return ack(fail(ErrorCode.Internal, 'coordinator error; ask again soon', 1000));
        }
        if (!res.ok || !rowCodecs) {
          ack(res);
          observer.leased?.(wid, job.id, res);
          return;
        }
        // Rows compressed (large ones on the thread pool); the spot checker still hears of the lease
        // right after its ack, unless the worker left meanwhile (its leases are released already).
        void rows.forWire(res, rowCodecs).then(
          (wire) => {
            if (wire.saved > 0) job.rowsCompressed(wire.saved);
            ack(wire.ack);
            if (stillThere()) observer.leased?.(wid, job.id, res);
          },
          (err: unknown) => {
            log.warn(`compressing a lease's rows failed (sent as they are): ${(err as Error).message}`);
            ack(res);
            if (stillThere()) observer.leased?.(wid, job.id, res);
          },
        );
      });
    });

    socket.on('gradient:push', (raw, rawAck) => {
      const ack = timedAck<'gradient:push'>('gradient:push', rawAck);
      inTurn(ack, async () => {
        const msg = parse(GradientPushSchema, raw);
        if (!msg.ok) return ack(fail(ErrorCode.BadRequest, msg.message));
        const wid = socket.data.workerId;
        if (!wid) return ack(fail(ErrorCode.NotRegistered, 'say worker:hello first'));
        const checked = gate?.takePush?.(wid, msg.value); // a spot-check replica: compared, never applied
        if (checked) return ack(checked);
        const job = socket.data.jobId ? registry.get(socket.data.jobId) : undefined;
        if (!job) return ack(fail(ErrorCode.UnknownLease, 'no lease held on any job'));
        const barred = gate?.pushRefusal?.(wid);
        if (barred) {
          job.release(wid, msg.value.leaseId); // its shard goes to another worker
          return ack(barred);
        }
        try {
          const res = await job.push(wid, msg.value);
          ack(res);
          if (res.ok && res.status !== 'duplicate') assigner.noteApplied(wid, job.id, msg.value.numSamples);
          observer.pushed?.(wid, job.id, msg.value, res);
        } catch (err) {
          log.warn(`push from ${wid} failed: ${(err as Error).stack ?? err}`);
          ack(fail(ErrorCode.Internal, 'coordinator error; the shard will be reissued', 1000));
        }
      }, () => (socket.data.jobId ? registry.get(socket.data.jobId)?.nextPushIsHeavy === true : false));
    });

    socket.on('lease:release', (raw, rawAck) => {
      const ack = timedAck<'lease:release'>('lease:release', rawAck);
      inTurn(ack, () => {
        const msg = parse(LeaseReleaseSchema, raw);
        if (!msg.ok) return ack(fail(ErrorCode.BadRequest, msg.message));
        const wid = socket.data.workerId;
        const job = socket.data.jobId ? registry.get(socket.data.jobId) : undefined;
        if (!wid || !job || !job.release(wid, msg.value.leaseId)) return ack(fail(ErrorCode.UnknownLease, 'no such lease held by this worker'));
        ack({ ok: true });
        observer.released?.(wid, job.id);
      });
    });

    socket.on('job:refuse', (raw, rawAck) => {
      const ack = timedAck<'job:refuse'>('job:refuse', rawAck);
      inTurn(ack, () => {
        const msg = parse(RefuseJobSchema, raw);
        if (!msg.ok) return ack(fail(ErrorCode.BadRequest, msg.message));
        const wid = socket.data.workerId;
        if (!wid) return ack(fail(ErrorCode.NotRegistered, 'say worker:hello first'));
        const refusedJob = registry.get(msg.value.jobId);
        if (refusedJob) {
          refusedJob.workerLeft(wid);
          if (socket.data.jobId === refusedJob.id) assigner.place(wid, null);
          refusals.record(wid, refusedJob.id, msg.value.reason);
        }
        // The reason is the worker's own text: one line, bounded, so it cannot forge log lines.
        log.info(`worker ${wid} cannot train job ${msg.value.jobId}: ${msg.value.reason.replace(/[\r\n\t]+/g, " ").slice(0, 300)}`);
        ack({ ok: true });
      });
    });

    socket.on('disconnect', () => {
      // In turn too: a push read before the disconnect is judged before the worker's leases go back.
      void turns.run(() => {
        const wid = socket.data.workerId;
        if (wid) assigner.place(wid, null);
        if (!wid || !socket.data.jobId) {
          if (wid) observer.left?.(wid, undefined);
          return;
        }
        const released = registry.get(socket.data.jobId)?.workerLeft(wid) ?? 0;
        if (released > 0) log.info(`worker ${wid} left; ${released} lease(s) reissued`);
        observer.left?.(wid, socket.data.jobId);
      }).catch((err: unknown) => log.warn(`a worker's leaving failed: ${(err as Error).stack ?? err}`));
    });
  });

  /**
   * A gateway's combined update (server/cluster/pre-aggregator.ts), leases in the order summed.
   * Each lease is judged as its push would be by the gate (a spot-check replica, a lease held for a
   * spot check, a quarantined worker: those need the push itself) and by the job (JobRuntime.pushCombined);
   * any the owner must see alone are named back and nothing is applied. Accepted, each worker's
   * push is told to the observers as if it had come alone (never held for a spot check).
   */
  const pushCombinedNow = async (jobId: string, baseVersion: number, entries: readonly (CombinedEntry | null)[], sum: Uint8Array): Promise<CombinedAnswer> => {
    const job = registry.get(jobId);
    const leaseIds = entries.map((e) => e?.leaseId ?? '');
    if (!job || entries.some((e) => e === null)) return { ok: false, individually: leaseIds };
    const individually: string[] = [];
    const leases = [];
    for (const e of entries as CombinedEntry[]) {
      const wid = (e.data as SocketData).workerId;
      // A lease a spot check holds is taken only with its own gradient (the checker compares it).
      const alone = !wid || (e.data as SocketData).jobId !== jobId || (gate?.wantsGradient?.(e.leaseId) === true && !e.gradient) || gate?.pushRefusal?.(wid) != null;
      if (alone) individually.push(e.leaseId);
      else leases.push({ workerId: wid, leaseId: e.leaseId, baseVersion: e.baseVersion, numSamples: e.numSamples, loss: e.loss, norm: e.norm });
    }
    if (individually.length > 0) return { ok: false, individually };
    const res = await job.pushCombined({ baseVersion, leases, sum });
    if (!res.ok) return res;
    leases.forEach((l, i) => {
      const ack = res.acks[i]!;
      assigner.noteApplied(l.workerId, job.id, l.numSamples);
      const own = (entries[i] as CombinedEntry).gradient;
      const push: GradientPush = { leaseId: l.leaseId, baseVersion: l.baseVersion, numSamples: l.numSamples, loss: l.loss, computeMs: 0, specs: own ? job.descriptor().trainableSpecs : [], data: own ?? new Uint8Array(0) };
      observer.pushed?.(l.workerId, job.id, push, ack);
    });
    return res;
  };
  // In turn with the workers' own events (a combined update is many pushes' worth of work).
  const pushCombined = (jobId: string, baseVersion: number, entries: readonly (CombinedEntry | null)[], sum: Uint8Array): Promise<CombinedAnswer> =>
    turns.run(() => pushCombinedNow(jobId, baseVersion, entries, sum));

  return {
    pushCombined,
    turns,
    wantsGradient: (leaseId: string) => gate?.wantsGradient?.(leaseId) === true,
    assigner,
    workers: () =>
      [...io.of('/').sockets.values()]
        .filter((s) => s.data.workerId && s.data.capabilities)
        .map((s) => ({ workerId: s.data.workerId!, capabilities: s.data.capabilities!, jobId: s.data.jobId, connectedAt: s.data.connectedAt ?? 0, refusedJobs: refusals.jobsRefusedBy(s.data.workerId!) })),
  };
}
