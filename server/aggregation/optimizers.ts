// Server optimizers over the model's flat parameter vector (Float32Array): Adam and SGD with
// (Nesterov) momentum. Plain loops rather than tfjs ops: for the models volunteers train, per-op
// overhead dominated (Adam on 100k parameters: 3.8 ms as ~44 wasm ops, well under 1 ms here), the
// learning rate can change per step (the staleness scale), the slots checkpoint exactly, and a
// replay after a crash reproduces the weights bit for bit.

export type OptimizerConfig =
  | { kind: 'adam'; learningRate: number; beta1?: number; beta2?: number; epsilon?: number }
  | { kind: 'sgd'; learningRate: number; momentum?: number; nesterov?: boolean };

export interface OptimizerState {
  /** Steps taken (Adam's bias correction). */
  step: number;
  /** Slot vectors by name ("m", "v", "momentum"), each as long as the parameters. */
  slots: { name: string; data: Float32Array }[];
}

export interface ServerOptimizer {
  /** params -= lr * update(grad), in place. `grad` has params.length values. */
  apply(params: Float32Array, grad: Float32Array, lr: number): void;
  /**
   * out = params - steps * lr * (the step this optimizer would take next if the gradient stayed
   * as its slots say): the weights `steps` steps ahead (look-ahead weights for stale workers:
   * DANA, Hakimi et al. 2019). Before any step, out = params. Reads, never changes, the slots.
   */
  predict(params: Float32Array, lr: number, steps: number, out: Float32Array): void;
  /** Copies of the slots now. */
  state(): OptimizerState;
  restore(state: OptimizerState): void;
}

export function createOptimizer(cfg: OptimizerConfig, size: number): ServerOptimizer {
  return cfg.kind === 'adam' ? new Adam(cfg, size) : new MomentumSgd(cfg, size);
}

abstract class SlotOptimizer implements ServerOptimizer {
  protected step = 0;
  protected readonly slots = new Map<string, Float32Array>();
  constructor(
    protected readonly size: number,
    names: readonly string[],
  ) {
    for (const n of names) this.slots.set(n, new Float32Array(size));
  }
  abstract apply(params: Float32Array, grad: Float32Array, lr: number): void;
  abstract predict(params: Float32Array, lr: number, steps: number, out: Float32Array): void;

  protected check(params: Float32Array, grad: Float32Array): void {
    if (params.length !== this.size || grad.length !== this.size) throw new RangeError(`optimizer sized ${this.size}: got ${params.length} params, ${grad.length} grads`);
  }

  state(): OptimizerState {
    return { step: this.step, slots: [...this.slots.entries()].map(([name, data]) => ({ name, data: data.slice() })) };
  }

  restore(state: OptimizerState): void {
    this.step = state.step;
    for (const s of state.slots) {
      const slot = this.slots.get(s.name);
      if (!slot || s.data.length !== this.size) throw new Error(`optimizer slot ${s.name} does not fit this model`);
      slot.set(s.data);
    }
  }
}

class Adam extends SlotOptimizer {
  private readonly b1: number;
  private readonly b2: number;
  private readonly eps: number;
  constructor(cfg: Extract<OptimizerConfig, { kind: 'adam' }>, size: number) {
    super(size, ['m', 'v']);
    this.b1 = cfg.beta1 ?? 0.9;
    this.b2 = cfg.beta2 ?? 0.999;
    this.eps = cfg.epsilon ?? 1e-7;
  }
  apply(params: Float32Array, grad: Float32Array, lr: number): void {
    this.check(params, grad);
    this.step++;
    const { b1, b2, eps } = this;
    const c1 = 1 - b1 ** this.step;
    const c2 = 1 - b2 ** this.step;
    const m = this.slots.get('m')!;
    const v = this.slots.get('v')!;
    for (let i = 0; i < params.length; i++) {
      const g = grad[i]!;
      const mi = b1 * m[i]! + (1 - b1) * g;
      const vi = b2 * v[i]! + (1 - b2) * g * g;
      m[i] = mi;
      v[i] = vi;
      params[i] = params[i]! - (lr * (mi / c1)) / (Math.sqrt(vi / c2) + eps);
    }
  }
  predict(params: Float32Array, lr: number, steps: number, out: Float32Array): void {
    if (this.step === 0 || steps === 0) return void out.set(params);
    const { b1, b2, eps } = this;
    const c1 = 1 - b1 ** this.step;
    const c2 = 1 - b2 ** this.step;
    const m = this.slots.get('m')!;
    const v = this.slots.get('v')!;
    const k = steps * lr;
    for (let i = 0; i < params.length; i++) out[i] = params[i]! - (k * (m[i]! / c1)) / (Math.sqrt(v[i]! / c2) + eps);
  }
}

class MomentumSgd extends SlotOptimizer {
  private readonly momentum: number;
  private readonly nesterov: boolean;
  constructor(cfg: Extract<OptimizerConfig, { kind: 'sgd' }>, size: number) {
    super(size, ['momentum']);
    this.momentum = cfg.momentum ?? 0.9;
    this.nesterov = cfg.nesterov ?? false;
  }
  apply(params: Float32Array, grad: Float32Array, lr: number): void {
    this.check(params, grad);
    this.step++;
    const mu = this.momentum;
    const buf = this.slots.get('momentum')!;
    for (let i = 0; i < params.length; i++) {
      const g = grad[i]!;
      const b = mu * buf[i]! + g;
      buf[i] = b;
      params[i] = params[i]! - lr * (this.nesterov ? g + mu * b : b);
    }
  }
  predict(params: Float32Array, lr: number, steps: number, out: Float32Array): void {
    // The momentum buffer is the step's direction (exactly so once the gradient settles).
    const buf = this.slots.get('momentum')!;
    const k = steps * lr;
    for (let i = 0; i < params.length; i++) out[i] = params[i]! - k * buf[i]!;
  }
}
