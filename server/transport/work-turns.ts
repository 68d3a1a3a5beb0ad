// Turn-bounded FIFO for the coordinator's worker events (lease grants, gradient pushes, releases,
// leaving). Under saturated ingest, socket reads arrive in batches: handled as they were read, one
// event-loop iteration would run every push's check, log append and optimizer step back to back
// (hundreds of ms with 32 busy workers), and timers, heartbeats, the dashboard and HTTP would wait
// behind all of it. Here each event becomes a task; tasks run in arrival order in setImmediate
// turns of at most `budgetMs` of synchronous work each, and between turns the loop serves
// everything else. One queue for every worker event of the process keeps each connection's order
// (a push, then the lease request pipelined behind it, then its disconnect) exactly as received.
// It adds no CPU; under load the time a task waits shows up in the ack latency, not as event-loop lag.

export interface WorkTurnsOptions {
  /** Synchronous work per turn, ms: the longest the event loop is held between its other duties. */
  readonly budgetMs?: number;
  /** Monotonic ms (injected in tests). */
  readonly now?: () => number;
  /** Schedules the next turn (injected in tests; setImmediate: after I/O and timers get their turn). */
  readonly schedule?: (fn: () => void) => void;
}

interface Task {
  readonly run: () => unknown;
  /** Asked when the task's turn comes: true if it will hold the loop long (an optimizer step). */
  readonly heavy: (() => boolean) | undefined;
  readonly resolve: (v: unknown) => void;
  readonly reject: (e: unknown) => void;
}

export const DEFAULT_TURN_BUDGET_MS = 8;

export class WorkTurns {
  private readonly queue: Task[] = [];
  private head = 0;
  private scheduled = false;
  private readonly budgetMs: number;
  private readonly now: () => number;
  private readonly schedule: (fn: () => void) => void;
  /** Turns run and tasks deferred to a later turn (budget spent), for metrics and tests. */
  readonly counts = { turns: 0, tasks: 0, deferred: 0 };

  constructor(opts: WorkTurnsOptions = {}) {
    this.budgetMs = opts.budgetMs ?? DEFAULT_TURN_BUDGET_MS;
    this.now = opts.now ?? (() => performance.now());
    this.schedule = opts.schedule ?? ((fn) => void setImmediate(fn));
  }

  /** Resolves once every task queued so far has run (shutdown: after the sockets close). */
  idle(): Promise<void> {
    return this.depth === 0 ? Promise.resolve() : this.run(() => undefined);
  }

  /** Tasks waiting for a turn. */
  get depth(): number {
    return this.queue.length - this.head;
  }

  /**
   * Runs `task` in a later turn, after every task queued before it; resolves (or rejects) with what
   * it returns (or throws). A task's own awaits run outside the budget: only its synchronous part counts.
   * `heavy`, asked when the task's turn comes, says it will hold the loop long (a push that completes
   * a buffer runs the robust step, 10-40 ms): such a task starts a turn of its own rather than running
   * after others in one, so the loop is held for the longer of the two, not their sum.
   */
  run<T>(task: () => T | Promise<T>, heavy?: () => boolean): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ run: task, heavy, resolve: resolve as (v: unknown) => void, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        this.schedule(() => this.turn());
      }
    });
  }

  private turn(): void {
    this.counts.turns++;
    const start = this.now();
    let ran = 0;
    while (this.head < this.queue.length) {
      const t = this.queue[this.head]!;
      if (ran > 0 && t.heavy !== undefined && isHeavy(t)) {
        this.counts.deferred += this.queue.length - this.head;
        break;
      }
      ran++;
      this.queue[this.head++] = undefined as unknown as Task; // let it be collected
      this.counts.tasks++;
      try {
        t.resolve(t.run());
      } catch (err) {
        t.reject(err);
      }
      if (this.head < this.queue.length && this.now() - start >= this.budgetMs) {
        this.counts.deferred += this.queue.length - this.head;
        break;
      }
    }
    if (this.head >= this.queue.length) {
      this.queue.length = 0;
      this.head = 0;
      this.scheduled = false;
    } else {
      if (this.head > 1024) {
        this.queue.splice(0, this.head);
        this.head = 0;
      }
      this.schedule(() => this.turn());
    }
  }
}

function isHeavy(t: Task): boolean {
  try {
    return t.heavy!();
  } catch {
    return false;
  }
}
