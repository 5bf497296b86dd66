/**
 * Owners: who holds a kernel object, a reservation or a claim. Every link,
 * rule, address, netns and claim netctl makes names one, so reconcile and
 * `netctl gc` keep it exactly while its owner's record exists (or an
 * operation in flight holds it), and remove it after.
 */
import { randomBytes } from 'node:crypto';

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

/**
 * Owner of one address Docker asks for in a pool: `docker:<pool id>@<nonce>`.
 * One owner per reservation: the IPAM gives an address again to the owner
 * that holds it (a retried CNI ADD), and a `--ip` already in use must be
 * refused to the second container that asks for it. In a pool of the
 * cluster's (a global network's, shared with each host's Docker) the owner
 * names the host too, `docker:<pool id>@<host id>.<nonce>`: a host's
 * Docker gives back only its own.
 */
export const dockerAddressOwner = (poolId: string, hostId?: string) =>
  `docker:${poolId}@${hostId ? `${hostId}.` : ''}${randomBytes(4).toString('hex')}`;
/** True for the owners dockerAddressOwner makes for poolId (and hostId). */
export const isDockerAddressOwner = (owner: string, poolId: string, hostId?: string) =>
  owner.startsWith(`docker:${poolId}@${hostId ? `${hostId}.` : ''}`);
