// Server optimizers over the model's variables: Adam and SGD with (Nesterov) momentum.
// Written here rather than using tf.train.* so that the learning rate can change per step (the
// staleness scale) and the slot state can be checkpointed and restored exactly.

import { tf } from '../../shared/training/tf.ts';

export type OptimizerConfig =
  | { kind: 'adam'; learningRate: number; beta1?: number; beta2?: number; epsilon?: number }
  | { kind: 'sgd'; learningRate: number; momentum?: number; nesterov?: boolean };

export interface OptimizerState {
  /** Steps taken (Adam's bias correction). */
  step: number;
  /** Slot tensors by name (e.g. "m/dense/kernel"), as plain arrays for checkpointing. */
  slots: { name: string; shape: number[]; data: Float32Array }[];
}

export interface ServerOptimizer {
  /** w -= lr * update(g). `grads[i]` matches `vars[i]`. Disposes nothing it does not own. */
  apply(vars: readonly tf.Variable[], grads: readonly tf.Tensor[], lr: number): void;
  /** Slot values now (synchronous, so a checkpoint captures one consistent version). */
  state(): OptimizerState;
  restore(vars: readonly tf.Variable[], state: OptimizerState): void;
  dispose(): void;
}

export function createOptimizer(cfg: OptimizerConfig, names: readonly string[]): ServerOptimizer {
  return cfg.kind === 'adam' ? new Adam(cfg, names) : new MomentumSgd(cfg, names);
}

abstract class SlotOptimizer implements ServerOptimizer {
  protected step = 0;
  protected slots = new Map<string, tf.Variable>();
  constructor(protected readonly names: readonly string[]) {}

  abstract apply(vars: readonly tf.Variable[], grads: readonly tf.Tensor[], lr: number): void;

  protected slot(kind: string, i: number, like: tf.Tensor): tf.Variable {
    const key = `${kind}/${this.names[i]}`;
    let v = this.slots.get(key);
    if (!v) {
      v = tf.variable(tf.zerosLike(like), false);
      this.slots.set(key, v);
    }
    return v;
  }

  state(): OptimizerState {
    const slots = [...this.slots.entries()].map(([name, v]) => ({ name, shape: [...v.shape], data: v.dataSync() as Float32Array }));
    return { step: this.step, slots };
  }

  restore(_vars: readonly tf.Variable[], state: OptimizerState): void {
    this.dispose();
    this.step = state.step;
    for (const s of state.slots) this.slots.set(s.name, tf.variable(tf.tensor(s.data, s.shape, 'float32'), false));
  }

  dispose(): void {
    for (const v of this.slots.values()) v.dispose();
    this.slots.clear();
  }
}

class Adam extends SlotOptimizer {
  private readonly b1: number;
  private readonly b2: number;
  private readonly eps: number;
  constructor(cfg: Extract<OptimizerConfig, { kind: 'adam' }>, names: readonly string[]) {
    super(names);
    this.b1 = cfg.beta1 ?? 0.9;
    this.b2 = cfg.beta2 ?? 0.999;
    this.eps = cfg.epsilon ?? 1e-7;
  }
  apply(vars: readonly tf.Variable[], grads: readonly tf.Tensor[], lr: number): void {
    this.step++;
    const { b1, b2, eps, step } = this;
    const c1 = 1 - b1 ** step;
    const c2 = 1 - b2 ** step;
    tf.tidy(() => {
      vars.forEach((w, i) => {
        const g = grads[i]!;
        const m = this.slot('m', i, w);
        const v = this.slot('v', i, w);
        const m2 = m.mul(b1).add(g.mul(1 - b1));
        const v2 = v.mul(b2).add(g.square().mul(1 - b2));
        m.assign(m2);
        v.assign(v2);
        const update = m2.div(c1).div(v2.div(c2).sqrt().add(eps));
        w.assign(w.sub(update.mul(lr)));
      });
    });
  }
}

class MomentumSgd extends SlotOptimizer {
  private readonly momentum: number;
  private readonly nesterov: boolean;
  constructor(cfg: Extract<OptimizerConfig, { kind: 'sgd' }>, names: readonly string[]) {
    super(names);
    this.momentum = cfg.momentum ?? 0.9;
    this.nesterov = cfg.nesterov ?? false;
  }
  apply(vars: readonly tf.Variable[], grads: readonly tf.Tensor[], lr: number): void {
    this.step++;
    tf.tidy(() => {
      vars.forEach((w, i) => {
        const g = grads[i]!;
        if (this.momentum === 0) {
          w.assign(w.sub(g.mul(lr)));
          return;
        }
        const buf = this.slot('momentum', i, w);
        const b2 = buf.mul(this.momentum).add(g);
        buf.assign(b2);
        const dir = this.nesterov ? g.add(b2.mul(this.momentum)) : b2;
        w.assign(w.sub(dir.mul(lr)));
      });
    });
  }
}
