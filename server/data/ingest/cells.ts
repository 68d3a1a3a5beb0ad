// Cells as the readers give them (CSV strings, numbers, bigints, lists, Arrow vectors) turned into
// numbers and category keys. Pure; a problem comes back as a value for the caller to place.

export type CellProblem = 'empty' | 'not-finite' | 'text';

export function toNumber(v: unknown): number | CellProblem {
  if (typeof v === 'number') return Number.isFinite(v) ? v : 'not-finite';
  if (typeof v === 'bigint') return Number(v);
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (v === null || v === undefined) return 'empty';
  if (typeof v === 'string') {
    const s = v.trim();
    if (s === '') return 'empty';
    const n = Number(s);
    if (Number.isFinite(n)) return n;
    return /^[+-]?(nan|inf|infinity)$/i.test(s) ? 'not-finite' : 'text';
  }
  return 'text';
}

/** The values of a list cell (array, typed array, Arrow vector), or null for a scalar. */
export function asList(v: unknown): ArrayLike<unknown> | null {
  if (Array.isArray(v)) return v;
  if (ArrayBuffer.isView(v) && !(v instanceof DataView)) return v as unknown as ArrayLike<unknown>;
  if (typeof v === 'object' && v !== null && typeof (v as { toArray?: unknown }).toArray === 'function') {
    return (v as { toArray(): ArrayLike<unknown> }).toArray();
  }
  return null;
}

/** A category or class label as a string key; numbers are normalised ("1.0" and 1 are both "1"). */
export function toKey(v: unknown): string | { readonly problem: CellProblem } {
  if (v === null || v === undefined) return { problem: 'empty' };
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : { problem: 'not-finite' };
  if (typeof v === 'bigint' || typeof v === 'boolean') return String(v);
  if (typeof v === 'string') {
    const s = v.trim();
    if (s === '') return { problem: 'empty' };
    const n = Number(s);
    return Number.isFinite(n) ? String(n) : s;
  }
  return { problem: 'text' };
}

export const PROBLEM_TEXT: Record<CellProblem, string> = {
  empty: 'the cell is empty (every feature and label needs a value)',
  'not-finite': 'the cell is NaN or infinite (every value must be a finite number)',
  text: 'the cell is not a number',
};
