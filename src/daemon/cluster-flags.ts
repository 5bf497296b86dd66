/** The daemon's place in a cluster on a shared store (docs/overlay.md): its flags and their defaults. */
export interface ClusterFlags {
  /** --advertise-addr; else the source address of the default route. */
  advertiseAddr?: string | undefined;
  /** Host lease length and renewal period. */
  hostTtlMs: number;
  hostRenewMs: number;
  /** Period of the overlay's kernel-against-store diff. */
  resyncMs: number;
  /** A host gone this long loses its endpoints' records and addresses (docs/overlay.md). */
  reapAfterMs: number;
}

export const DEFAULT_CLUSTER: ClusterFlags = {
  hostTtlMs: 15_000,
  hostRenewMs: 5_000,
  resyncMs: 10_000,
  reapAfterMs: 15 * 60_000,
};
