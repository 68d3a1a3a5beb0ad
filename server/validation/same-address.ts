// Whether a spot check's replica may go to a worker at the first worker's own address
// (FLOCK_SPOT_CHECK_SAME_ADDRESS). By default never: one address is one opinion, so a single host
// cannot confirm its own results through a second connection (Sybil resistance). A lab behind one
// NAT then never gets its work validated; an operator who trusts that address (or every volunteer)
// lets two workers there check each other, provided both ids are credential-backed. Pure.

import { isIpAddress, normalizeAddress } from '../security/client-address.ts';

/** off: never (default); any: at every address; list: at these addresses only. */
export type SameAddressReplicas = { readonly kind: 'off' } | { readonly kind: 'any' } | { readonly kind: 'list'; readonly addresses: readonly string[] };

export const SAME_ADDRESS_OFF: SameAddressReplicas = { kind: 'off' };

/** FLOCK_SPOT_CHECK_SAME_ADDRESS: unset/0 (off), 1 (any address), or a comma-separated list of IP addresses. */
export function parseSameAddress(raw: string | undefined): { ok: true; value: SameAddressReplicas } | { ok: false; error: string } {
  const v = (raw ?? '').trim();
  if (v === '' || v === '0' || v === 'false') return { ok: true, value: SAME_ADDRESS_OFF };
  if (v === '1' || v === 'true') return { ok: true, value: { kind: 'any' } };
  const list = v.split(',').map((s) => s.trim()).filter(Boolean);
  if (list.length === 0 || list.some((a) => !isIpAddress(a))) {
    return { ok: false, error: `FLOCK_SPOT_CHECK_SAME_ADDRESS=${JSON.stringify(v.slice(0, 60))} is not accepted: use 0 (replicas only at another address), 1 (also at the same address) or a comma-separated list of the IP addresses (e.g. a lab's NAT) where two workers may check each other` };
  }
  return { ok: true, value: { kind: 'list', addresses: list.map(normalizeAddress) } };
}

/**
 * May a worker at `address` check the result of another worker at the same address? Only when the
 * setting allows that address and both workers hold verified identities (ids the coordinator issued
 * with a credential, not ids a client picked).
 */
export function sameAddressReplicaAllowed(policy: SameAddressReplicas, address: string, firstVerified: boolean, replicaVerified: boolean): boolean {
  if (!firstVerified || !replicaVerified) return false;
  if (policy.kind === 'any') return true;
  return policy.kind === 'list' && policy.addresses.includes(normalizeAddress(address));
}
