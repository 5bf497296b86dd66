/**
 * Owner tags on links: netctl is root on someone else's host, so it
 * changes, deletes or adopts only links it made, whatever name a request
 * gives (a bridge option naming `br0`, a leftover of the same name).
 *
 * A link is netctl's when its device group (IFLA_GROUP) is NETCTL_GROUP:
 * the kernel sets the group in the create request itself, so a link is
 * tagged from its first moment. Its owner (`net:<id>`, `ep:<id>`) goes in
 * its alias, which the kernel takes only in a second request (rtnl_newlink
 * ignores IFLA_IFALIAS on create): a link killed between the two is
 * netctl's but unclaimed, and gc finds it by its group.
 */

/** What an owner is read from: a link's alias and device group (link.ts's Link has both). */
export interface Tagged {
  alias: string | undefined;
  group: number;
}

/** Device group of every link netctl makes ("nc"); `ip link show group 28259` lists them. */
export const NETCTL_GROUP = 0x6e63;

/** Prefix of the alias that names a link's owner. */
export const OWNER_TAG_PREFIX = 'netctl:';

export const ownerTag = (owner: string) => `${OWNER_TAG_PREFIX}${owner}`;

/**
 * Whose a link is: its owner when it is netctl's and names one,
 * 'unclaimed' when netctl made it but died before naming the owner,
 * undefined when it is not netctl's at all.
 */
export function linkOwner(link: Tagged): string | undefined {
  if (link.alias?.startsWith(OWNER_TAG_PREFIX)) return link.alias.slice(OWNER_TAG_PREFIX.length);
  if (link.group === NETCTL_GROUP && !link.alias) return UNCLAIMED;
  return undefined;
}

/** linkOwner of a netctl link made but never named (see the file comment). */
export const UNCLAIMED = 'unclaimed';

/** A link of that name exists and is someone else's: nothing was changed. */
export class NotOwnedError extends Error {
  override readonly name = 'NotOwnedError';
  readonly code = 'kernel.not_owned';
  constructor(
    /** What it is, for people: `link br0`, `link eth0 in netns /run/netns/x`. */
    readonly object: string,
    /** Who was to own it. */
    readonly owner: string,
    /** Whose it is: another netctl owner, or undefined when it is not netctl's. */
    readonly holder: string | undefined,
  ) {
    super(
      `${object} exists and is ${holder ? `netctl's ${holder}, not ${owner}'s` : "not netctl's"}: nothing was changed`,
    );
  }
}

/** May owner take this link: its own, or netctl's and unclaimed. */
export function mayTake(link: Tagged, owner: string): boolean {
  const holder = linkOwner(link);
  return holder === owner || holder === UNCLAIMED;
}
