// Byzantine volunteers for the fault tests: each attack turns the honest gradient a worker
// computed into what a malicious one sends. Every output is finite and within the job's norm
// bound where the attack says so, so the gradient check lets it through. Test-only code.

import { mulberry32 } from '../data/sharder.ts';

export const ATTACKS = ['sign-flip', 'fixed-direction', 'noise', 'alie'] as const;
export type AttackName = (typeof ATTACKS)[number];

export const ATTACK_TITLES: Record<AttackName, string> = {
  'sign-flip': '(a) sign-flipped x100',
  'fixed-direction': '(b) fixed direction at the norm bound',
  noise: '(c) random noise at the bound',
  alie: '(d) ALIE (mean - z*std, z = 1)',
};

export type Attack = (honest: Float32Array) => Float32Array;

const norm = (v: Float32Array): number => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
const scaledTo = (v: Float32Array, n: number): Float32Array => {
  const f = n / norm(v);
  return v.map((x) => x * f);
};
function gaussian(rnd: () => number, n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
  return out;
}

/** A fresh attacker (its own state: the fixed direction, the running statistics ALIE needs). */
export function makeAttack(name: AttackName, normBound: number, seed = 99): Attack {
  const rnd = mulberry32(seed);
  const atBound = 0.9 * normBound;
  switch (name) {
    case 'sign-flip':
      return (g) => g.map((x) => -100 * x);
    case 'fixed-direction': {
      let dir: Float32Array | null = null;
      return (g) => (dir ??= scaledTo(gaussian(rnd, g.length), atBound)).slice();
    }
    case 'noise':
      return (g) => scaledTo(gaussian(rnd, g.length), atBound);
    case 'alie': {
      // A Little Is Enough (Baruch et al. 2019): per coordinate, the honest mean shifted by z standard
      // deviations against it; the attacker estimates both from the gradients it computes itself.
      let mean: Float64Array | null = null;
      let sq: Float64Array | null = null;
      const beta = 0.8;
      const z = 1;
      return (g) => {
        if (!mean || !sq) {
          mean = Float64Array.from(g);
          sq = Float64Array.from(g, (x) => x * x);
        } else {
          for (let i = 0; i < g.length; i++) {
            mean[i] = beta * mean[i]! + (1 - beta) * g[i]!;
            sq[i] = beta * sq[i]! + (1 - beta) * g[i]! * g[i]!;
          }
        }
        const out = new Float32Array(g.length);
        for (let i = 0; i < g.length; i++) {
          const sd = Math.sqrt(Math.max(0, sq[i]! - mean[i]! * mean[i]!));
          out[i] = mean[i]! - z * Math.sign(mean[i]!) * sd;
        }
        return out;
      };
    }
  }
}
