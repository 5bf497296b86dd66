/**
 * Owners: who holds a kernel object, a reservation or a claim. Every link,
 * rule, address, netns and claim netctl makes names one, so reconcile and
 * `netctl gc` keep it exactly while its owner's record exists (or an
 * operation in flight holds it), and remove it after.
 */

export type OwnerKind = 'net' | 'ep' | 'sb';

export const networkOwner = (id: string) => `net:${id}`;
export const endpointOwner = (id: string) => `ep:${id}`;
export const sandboxOwner = (id: string) => `sb:${id}`;

/** An owner's kind and id; undefined for owners that are not one record's (e.g. `base`). */
export function parseOwner(owner: string): { kind: OwnerKind; id: string } | undefined {
  const colon = owner.indexOf(':');
  const kind = owner.slice(0, colon);
  if (colon < 0 || (kind !== 'net' && kind !== 'ep' && kind !== 'sb')) return undefined;
  return { kind, id: owner.slice(colon + 1) };
}

export const isOwnerOfKind = (owner: string, kind: OwnerKind) => owner.startsWith(`${kind}:`);
