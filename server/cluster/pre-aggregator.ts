// Gateway-side pre-aggregation (issue 13, hierarchical aggregation). A process that does not own
// the jobs holds the gradients its own workers push for a `buffered` + `mean` job for a short
// interval, validates each as the owner would (tensor specs, finite, the norm bound, staleness
// against the newest version this process knows), adds them up per (job, lease base version) and
// forwards ONE combined update: the float32 sum, the leases it answers with their sample counts,
// losses and per-worker norms. The owner checks every lease claim and logs it (JobRuntime.pushCombined);
// each worker's ack waits for the owner's durable commit, as on the individual path.
//
// Everything else goes individually, unchanged: jobs whose rule needs individual gradients (the
// robust rules, the default: they clip, screen and weight each gradient by its worker's history),
// `async` jobs (every gradient is a step of its own: there is nothing to sum), `local` jobs (one
// pseudo-gradient per lease of H steps, few messages already, combined by a robust rule by
// default), and any gradient the gateway cannot vouch for (unknown job or specs, bad tensors, too
// stale, a spot-check replica). A lease the owner's spot checker holds (the owner says so with the
// lease: mustCarry) travels inside the combined update with its own gradient, which the checker
// compares. When the owner names leases it must judge one by one (a duplicate, a lease not the
// worker's, a quarantined worker, a session it does not know...), those are pushed
// individually and the rest combined once more; any other failure sends them all individually (the
// owner's lease claims and idempotency make a combined update that did land answer 'duplicate').
//
// Summation order: float32, from zero, in the order the gradients arrived here. The owner divides
// the buffer's sum by the number of gradients it holds, so a combined update of n gradients equals
// the same n admitted one by one in that order, bit for bit, when their staleness discount is 1
// (aggregator.ts); with a discount the owner scales the sum once (rounding differs in the last bit).
//
// State owned: per job, what the gateway knows of it (config, specs, newest version); the open
// batches and the leases waiting in them or in flight.

import type { TensorSpec } from '../../shared/codec/tensor-codec.ts';
import type { GradientPush, PushAck } from '../../shared/protocol/messages.ts';
import { GradientPushSchema, parse } from '../../shared/protocol/schemas.ts';
import { acceptGradient } from '../aggregation/wire.ts';
import { judgeStaleness, type StalenessPolicy } from '../aggregation/staleness.ts';
import { aggregationOf, type AggregationConfig } from '../aggregation/aggregation-config.ts';

/** What a gateway must know of a job to vouch for its gradients (from the shared store and the owner's job:get answers). */
export interface GatewayJob {
  readonly aggregation: AggregationConfig;
  readonly maxGradNorm: number;
  readonly staleness: StalenessPolicy;
}

/** One lease inside a combined update, as it crosses to the owner. `sid`: the worker's socket on the gateway. */
export interface WireLease {
  readonly sid: string;
  readonly leaseId: string;
  readonly baseVersion: number;
  readonly numSamples: number;
  readonly loss: number | null;
  readonly norm: number;
  /** Its own gradient (float32, packed) when a spot check on the owner holds the lease (mustCarry). */
  readonly gradient?: Uint8Array | undefined;
}
export interface WireCombined {
  readonly jobId: string;
  readonly baseVersion: number;
  readonly leases: readonly WireLease[];
  /** Float32 sum of the leases' gradients (trainable weights, packed). */
  readonly sum: Uint8Array;
}
/** The owner's answer: every lease's ack in order, or the leases to push one by one (nothing applied). */
export type CombinedAnswer = { ok: true; acks: PushAck[] } | { ok: false; individually: string[] } | { ok: false; error: string };

/** Whether gradients of a job with this aggregation may be summed at a gateway. */
export function combinable(a: AggregationConfig): boolean {
  return a.mode === 'buffered' && a.rule === 'mean';
}

/** Float32 sum from zero, in order (the order the owner's mean assumes: see the header). */
export function sumInOrder(gs: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(gs[0]!.length);
  for (const g of gs) for (let i = 0; i < out.length; i++) out[i] = out[i]! + g[i]!;
  return out;
}

export interface PreAggregatorOptions {
  /** How long the first gradient of a batch waits for others (ms). */
  readonly intervalMs: number;
  /** The job's config, or null when unknown (then its gradients go individually). */
  readonly job: (jobId: string) => Promise<GatewayJob | null>;
  /** Sends a combined update to the owner. */
  readonly send: (c: WireCombined) => Promise<CombinedAnswer>;
  /** Forwards one worker's push as it came (the individual path). */
  readonly individually: (sid: string, raw: unknown) => Promise<unknown>;
  readonly log?: ((m: string) => void) | undefined;
}

interface Entry {
  readonly sid: string;
  readonly raw: unknown;
  readonly msg: GradientPush;
  readonly floats: Float32Array;
  readonly norm: number;
  readonly done: (ack: unknown) => void;
}
interface Batch {
  readonly jobId: string;
  readonly baseVersion: number;
  readonly entries: Entry[];
  readonly timer: NodeJS.Timeout;
}

export class PreAggregator {
  /** Per job: trainable specs seen in the owner's job:get answers, and the newest version seen here. */
  private readonly specs = new Map<string, readonly TensorSpec[]>();
  private readonly versions = new Map<string, number>();
  private readonly batches = new Map<string, Batch>();
  /** Leases a spot check on the owner holds (told with the lease): their own gradient goes along. */
  private readonly carry = new Set<string>();
  /** Leases waiting here or in flight: a worker's retried push joins the first one's answer. */
  private readonly inFlight = new Map<string, Promise<unknown>>();
  /** Combined updates sent, gradients they carried, pushes forwarded one by one. */
  readonly stats = { combined: 0, combinedGradients: 0, individual: 0 };

  constructor(private readonly o: PreAggregatorOptions) {}

  /** A job:get answer passed through: the job's trainable specs (what a gradient must match). */
  learnSpecs(jobId: string, specs: readonly TensorSpec[]): void {
    this.specs.set(jobId, specs);
  }

  /** A version of a job this process has seen (weights cached, a lease granted at it). */
  learnVersion(jobId: string, version: number): void {
    if (version > (this.versions.get(jobId) ?? -1)) this.versions.set(jobId, version);
  }

  /** The owner's spot checker holds this lease: its gradient must reach the owner as the worker sent it. */
  mustCarry(leaseId: string): void {
    this.carry.add(leaseId);
    if (this.carry.size > 10_000) this.carry.delete(this.carry.values().next().value!);
  }

  /** A worker's gradient:push for `jobId` (its last lease's job); resolves with the worker's ack. */
  push(sid: string, jobId: string | undefined, raw: unknown): Promise<unknown> {
    const parsed = parse(GradientPushSchema, raw);
    if (!parsed.ok) return this.alone(sid, raw);
    const msg = parsed.value;
    const waiting = this.inFlight.get(msg.leaseId);
    if (waiting) return waiting;
    const p = this.admit(sid, jobId, raw, msg).finally(() => {
      this.inFlight.delete(msg.leaseId);
      this.settled(msg.leaseId);
    });
    this.inFlight.set(msg.leaseId, p);
    return p;
  }

  private alone(sid: string, raw: unknown): Promise<unknown> {
    this.stats.individual++;
    return this.o.individually(sid, raw);
  }

  private async admit(sid: string, jobId: string | undefined, raw: unknown, msg: GradientPush): Promise<unknown> {
    const job = jobId ? await this.o.job(jobId).catch(() => null) : null;
    const specs = jobId ? this.specs.get(jobId) : undefined;
    if (!jobId || !job || !specs || !combinable(job.aggregation)) return this.alone(sid, raw);
    // What the owner would refuse or must see alone goes alone: it answers with the right code.
    const g = acceptGradient(specs, msg.specs, msg.data, msg.encoding, job.maxGradNorm);
    if (!g.ok) return this.alone(sid, raw);
    // A spot-check replica is answered by the checker alone; a held lease pushed compressed is compared as it came.
    if (msg.leaseId.startsWith('spot-') || (this.carry.has(msg.leaseId) && msg.encoding !== undefined && msg.encoding !== 'f32')) return this.alone(sid, raw);
    const known = this.versions.get(jobId) ?? msg.baseVersion;
    if (!judgeStaleness(job.staleness, Math.max(known, msg.baseVersion), msg.baseVersion).accept) return this.alone(sid, raw);
    this.learnVersion(jobId, msg.baseVersion);
    return new Promise((done) => {
      const key = `${jobId}@${msg.baseVersion}`;
      let b = this.batches.get(key);
      if (!b) {
        const timer = setTimeout(() => this.flush(key), this.o.intervalMs);
        b = { jobId, baseVersion: msg.baseVersion, entries: [], timer };
        this.batches.set(key, b);
      }
      b.entries.push({ sid, raw, msg, floats: g.floats, norm: g.norm, done });
      if (b.entries.length >= job.aggregation.bufferSize) this.flush(key);
    });
  }

  private flush(key: string): void {
    const b = this.batches.get(key);
    if (!b) return;
    this.batches.delete(key);
    clearTimeout(b.timer);
    void this.send(b.jobId, b.baseVersion, b.entries, true);
  }

  /** Sends `entries` combined (two or more) or alone; `again`: the owner may still name some to push alone. */
  private async send(jobId: string, baseVersion: number, entries: readonly Entry[], again: boolean): Promise<void> {
    if (entries.length === 1) return this.one(entries[0]!);
    const sum = sumInOrder(entries.map((e) => e.floats));
    const leases = entries.map((e) => ({
      sid: e.sid, leaseId: e.msg.leaseId, baseVersion: e.msg.baseVersion, numSamples: e.msg.numSamples, loss: e.msg.loss, norm: e.norm,
      ...(this.carry.has(e.msg.leaseId) ? { gradient: new Uint8Array(e.floats.buffer, e.floats.byteOffset, e.floats.byteLength) } : {}),
    }));
    this.stats.combined++;
    this.stats.combinedGradients += entries.length;
    let answer: CombinedAnswer;
    try {
      answer = await this.o.send({ jobId, baseVersion, leases, sum: new Uint8Array(sum.buffer) });
    } catch (err) {
      answer = { ok: false, error: (err as Error).message };
    }
    if (answer.ok) {
      entries.forEach((e, i) => e.done(answer.acks[i]));
      return;
    }
    if ('error' in answer) {
      this.o.log?.(`pre-aggregation: a combined update of ${entries.length} was not taken (${answer.error}); pushing them one by one`);
      await Promise.all(entries.map((e) => this.one(e)));
      return;
    }
    const alone = new Set(answer.individually);
    const rest = entries.filter((e) => !alone.has(e.msg.leaseId));
    await Promise.all([
      ...entries.filter((e) => alone.has(e.msg.leaseId)).map((e) => this.one(e)),
      // Once more without them; a second refusal sends the rest alone too.
      again && rest.length > 0 ? this.send(jobId, baseVersion, rest, false) : Promise.all(rest.map((e) => this.one(e))),
    ]);
  }

  private async one(e: Entry): Promise<void> {
    e.done(await this.alone(e.sid, e.raw));
  }

  /** A lease answered (either way): forget that it was held for a check. */
  private settled(leaseId: string): void {
    this.carry.delete(leaseId);
  }
}
