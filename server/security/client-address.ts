// Who is asking: the client address a request is counted under. Pure. X-Forwarded-For is believed
// only when FLOCK_TRUST_PROXY says so, and only from the proxy itself (a loopback peer, or one of
// the listed proxy addresses); anyone else could write any address into that header.

/** off: the TCP peer is the client. loopback: trust X-Forwarded-For from 127.0.0.0/8 and ::1. list: from these peers. */
export type TrustProxy = { readonly kind: 'off' } | { readonly kind: 'loopback' } | { readonly kind: 'list'; readonly proxies: readonly string[] };

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** '::ffff:1.2.3.4' and '1.2.3.4' are one client; v6 lower-cased; anything else returned as is. */
export function normalizeAddress(raw: string): string {
  const a = raw.trim().toLowerCase();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  return mapped ? mapped[1]! : a;
}

export function isIpAddress(raw: string): boolean {
  const a = normalizeAddress(raw);
  const m = IPV4.exec(a);
  if (m) return m.slice(1).every((p) => Number(p) <= 255);
  return a.includes(':') && /^[0-9a-f:.]{2,45}$/.test(a);
}

export function isLoopback(raw: string): boolean {
  const a = normalizeAddress(raw);
  return a === '::1' || a.startsWith('127.');
}

/** FLOCK_TRUST_PROXY: unset/0 (off), 1 (a proxy on this machine), or a comma-separated list of proxy addresses. */
export function parseTrustProxy(raw: string | undefined): { ok: true; value: TrustProxy } | { ok: false; error: string } {
  const v = (raw ?? '').trim();
  if (v === '' || v === '0' || v === 'false') return { ok: true, value: { kind: 'off' } };
  if (v === '1' || v === 'true') return { ok: true, value: { kind: 'loopback' } };
  const list = v.split(',').map((s) => s.trim()).filter(Boolean);
  const bad = list.find((a) => !isIpAddress(a));
  if (bad !== undefined || list.length === 0) {
    return { ok: false, error: `FLOCK_TRUST_PROXY=${JSON.stringify(v.slice(0, 60))} is not accepted: use 0 (no proxy), 1 (a reverse proxy on this machine) or a comma-separated list of the proxies' IP addresses` };
  }
  return { ok: true, value: { kind: 'list', proxies: list.map(normalizeAddress) } };
}

function trusted(peer: string, trust: TrustProxy): boolean {
  if (trust.kind === 'off') return false;
  if (trust.kind === 'loopback') return isLoopback(peer);
  return trust.proxies.includes(normalizeAddress(peer));
}

/**
 * The client's address. With a trusted peer, the right-most X-Forwarded-For entry that is not
 * itself a trusted proxy (entries left of it were written by the client and prove nothing).
 */
export function clientAddress(peer: string | undefined, forwardedFor: string | string[] | undefined, trust: TrustProxy): string {
  const p = normalizeAddress(peer ?? 'unknown');
  if (!trusted(p, trust) || forwardedFor === undefined) return p;
  const hops = (Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor).split(',').map((s) => s.trim()).filter(Boolean);
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hops[i]!;
    if (!isIpAddress(hop)) return p; // garbage: count it under the proxy, not under a made-up name
    if (!trusted(hop, trust)) return normalizeAddress(hop);
  }
  return p;
}
