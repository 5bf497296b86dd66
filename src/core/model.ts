/**
 * The CNM model (libnetwork's Network, Endpoint, Sandbox) as stored in the
 * KV. Plain data: everything here round-trips through JSON.
 */

/** `local`: one host's state; `global`: shared by every host (overlay). */
export type Scope = 'local' | 'global';

export type Protocol = 'tcp' | 'udp' | 'sctp';

/** One subnet of a network, as requested and then as resolved by the IPAM. */
export interface IpamPoolConfig {
  subnet: string;
  /** Sub-range that dynamic allocation draws from (`--ip-range`). */
  ipRange?: string;
  gateway?: string;
  /** Addresses kept out of allocation, by name (`--aux-address name=ip`). */
  auxAddresses?: Record<string, string>;
}

export interface Network {
  /** 64 hex digits, like Docker's network ids. */
  id: string;
  name: string;
  driver: string;
  scope: Scope;
  ipam: {
    driver: string;
    options: Record<string, string>;
    /** Resolved by the IPAM: the gateway is always set. */
    config: (IpamPoolConfig & { gateway: string })[];
    /**
     * IPAM pool ids, one per config entry — or none when the network's
     * addresses are held outside netctl's IPAM (Docker's built-in IPAM).
     */
    poolIds: string[];
    /**
     * The pools, gateways and aux addresses were reserved by whoever made
     * the network (Docker, through its IPAM driver — netctl's own or
     * Docker's built-in one): netctl neither requests nor releases them.
     */
    external?: boolean;
  };
  enableIPv6: boolean;
  internal: boolean;
  options: Record<string, string>;
  labels: Record<string, string>;
  /** Driver-owned settings the driver chose at creation (e.g. the bridge name). */
  driverData: Record<string, string>;
  created: string;
  /**
   * Docker's NetworkID when Docker uses this network (docs/docker.md): the
   * same as `id` for a network Docker created, another id for a netctl
   * network Docker adopted (`-o netctl.name=NAME`).
   */
  dockerId?: string;
  /**
   * Set (with its version bumped) by a delete before it looks for members:
   * an endpoint's claim compares the version it read, so no endpoint joins
   * a network whose delete has looked (controller/claims.ts).
   */
  deleting?: boolean;
}

export interface PortMapping {
  proto: Protocol;
  hostIp?: string;
  hostPort: number;
  /** Last port of a range (inclusive); the container range has the same length. */
  hostPortEnd?: number;
  containerPort: number;
  containerPortEnd?: number;
}

export interface Endpoint {
  id: string;
  networkId: string;
  name: string;
  /** Set while joined. */
  sandboxId?: string;
  /** Interface name inside the sandbox (eth0, ...), as joined: CNI names an attachment by it. */
  ifname?: string;
  mac: string;
  /** Address with prefix length, e.g. 10.1.0.2/24. */
  ipv4?: string;
  ipv6?: string;
  portMappings: PortMapping[];
  aliases: string[];
  driverData: Record<string, string>;
  created: string;
  /**
   * The addresses were given by the caller, who holds them in its IPAM
   * (Docker): the endpoint's removal releases none.
   */
  externalAddresses?: boolean;
}

export interface Sandbox {
  id: string;
  name: string;
  /** The netns path: /run/netns/NAME or /proc/PID/ns/net. */
  key: string;
  /**
   * nsfs inode of the netns when netctl first saw it: a reused path is a
   * different sandbox. 0: not known — the runtime makes the netns after the
   * join (Docker binds it at its key when the container starts), and says
   * when the sandbox goes.
   */
  netnsInode: number;
  /** /proc/sys/kernel/random/boot_id when made: nothing from an earlier boot is still live. */
  bootId: string;
  /** netctl made the netns (and removes it with the sandbox). */
  ownsNetns: boolean;
  /** Shares the host's namespace ('host') or another sandbox's (its id). */
  netnsOf?: string;
  hostname: string;
  endpointIds: string[];
  /** Process started by `netctl run`, stopped with the sandbox. */
  pid?: number;
  /** Its start time (clock ticks since boot): a later process with the same pid is not it. */
  pidStart?: number;
  labels: Record<string, string>;
  created: string;
  /** Set by a delete-if-empty before it looks for attachments (as Network.deleting). */
  deleting?: boolean;
}

/**
 * Where an endpoint of a global network is, for every other host to
 * program (static FDB and neighbour entries on its VXLAN device): written
 * with the endpoint's join, removed with its leave (docs/overlay.md).
 */
export interface Peer {
  networkId: string;
  endpointId: string;
  /** The host the endpoint is on (its host id). */
  host: string;
  /** That host's VXLAN tunnel endpoint: its advertise address. */
  vtep: string;
  mac: string;
  /** Addresses without prefix length. */
  ipv4?: string;
  ipv6?: string;
}

/** A daemon on the shared store, under a lease it renews (docs/overlay.md). */
export interface HostRecord {
  /** Kept in the host's state dir: the same across restarts and reboots. */
  id: string;
  hostname: string;
  /** Underlay address: the VTEP of its overlay endpoints. */
  address: string;
  /** /proc/sys/kernel/random/boot_id: a new one means the host rebooted and its sandboxes are gone. */
  bootId: string;
  version: string;
  /** When this daemon started. */
  started: string;
  /** Lease length: the record vanishes this long after the last renewal. */
  ttlMs: number;
}
