// Decides whether a pushed gradient is well formed: exact specs, exact byte length, every value
// finite, L2 norm under the job's bound. Pure; the aggregator refuses what this rejects.

import { decodeTensors, sameSpecs, type BinaryLike, type NamedArray, type TensorSpec } from '../../shared/codec/tensor-codec.ts';
import { ErrorCode } from '../../shared/protocol/errors.ts';

export type GradientCheck =
  | { ok: true; arrays: NamedArray[]; norm: number }
  | { ok: false; code: ErrorCode; message: string };

export function checkGradient(expected: readonly TensorSpec[], specs: readonly TensorSpec[], data: BinaryLike, maxNorm: number): GradientCheck {
  if (!sameSpecs(expected, specs)) return { ok: false, code: ErrorCode.SpecMismatch, message: 'gradient tensors do not match the model' };
  let arrays: NamedArray[];
  try {
    arrays = decodeTensors(specs, data);
  } catch (err) {
    return { ok: false, code: ErrorCode.SpecMismatch, message: (err as Error).message };
  }
  let sq = 0;
  for (const a of arrays) {
    const d = a.data;
    for (let i = 0; i < d.length; i++) {
      const v = d[i]!;
      if (!Number.isFinite(v)) return { ok: false, code: ErrorCode.NonFinite, message: `${a.spec.name} has a non-finite value at ${i}` };
      sq += v * v;
    }
  }
  const norm = Math.sqrt(sq);
  if (norm > maxNorm) return { ok: false, code: ErrorCode.TooLarge, message: `gradient norm ${norm.toFixed(1)} exceeds ${maxNorm}` };
  return { ok: true, arrays, norm };
}
