// Number and time formatting shared by the volunteer page and the dashboard (one place decides
// how a percentage, a rate or a duration reads).

export const pct = (x: number | null | undefined, digits = 2): string => (x == null || !Number.isFinite(x) ? '–' : `${(x * 100).toFixed(digits)}%`);

export function int(x: number | null | undefined): string {
  return x == null || !Number.isFinite(x) ? '–' : Math.round(x).toLocaleString('en-US');
}

/** 3 significant digits, thousands separated: 0.00312, 12.4, 1,234. */
export function num(x: number | null | undefined): string {
  if (x == null || !Number.isFinite(x)) return '–';
  const a = Math.abs(x);
  if (a >= 1000) return Math.round(x).toLocaleString('en-US');
  if (a === 0) return '0';
  return Number(x.toPrecision(3)).toString();
}

/** "1 h 02 min", "14 min", "4 min 05 s", "12 s". */
export function duration(ms: number | null | undefined): string {
  if (ms == null || !Number.isFinite(ms) || ms < 0) return '–';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 10) return `${m} min ${String(s % 60).padStart(2, '0')} s`;
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${String(m % 60).padStart(2, '0')} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

export function clock(at: number | null | undefined): string {
  return at == null ? '–' : new Date(at).toLocaleTimeString('en-GB', { hour12: false });
}

export function dateTime(at: number | null | undefined): string {
  if (at == null) return '–';
  const d = new Date(at);
  const today = new Date().toDateString() === d.toDateString();
  return today ? clock(at) : `${d.toLocaleDateString('en-GB')} ${clock(at)}`;
}

/** Time since `at`, coarse: "just now", "42 s ago", "3 min ago". */
export function ago(at: number, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - at) / 1000));
  if (s < 3) return 'just now';
  return `${duration(s * 1000)} ago`;
}

export function gflop(flop: number): string {
  const g = flop / 1e9;
  if (g < 10) return `${g.toFixed(2)} GFLOP`;
  if (g < 100_000) return `${Math.round(g).toLocaleString('en-US')} GFLOP`;
  return `${(g / 1000).toFixed(1)} TFLOP`;
}
