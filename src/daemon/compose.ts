/**
 * The one composition root: a Controller wired to its real parts — the
 * state store (embedded LMDB unless a URL is given), the IPAM over it, the
 * iptables firewall and the drivers. The daemon runs one (daemon.ts); the
 * CLI and the standalone CNI plugin run one in their own process when no
 * daemon answers — same store, same results.
 */
import { Controller } from '../controller/controller.js';
import { State } from '../controller/state.js';
import type { HostRoute } from '../controller/subnets.js';
import { BridgeDriver } from '../drivers/bridge/bridge.js';
import { HostDriver } from '../drivers/host/host.js';
import { NoneDriver } from '../drivers/none/none.js';
import { OverlayDriver } from '../drivers/overlay/overlay.js';
import { Errors } from '../errors.js';
import { iptablesBackend } from '../firewall/index.js';
import { KvIpamDriver } from '../ipam/driver.js';
import { Ipam } from '../ipam/ipam.js';
import { addrList, linkList, linkOwner, Netlink, routeList } from '../kernel/index.js';
import {
  describeStoreUrl,
  fallbackStoreUrl,
  HostScopedStore,
  hostId,
  type KvStore,
  openStore,
} from '../kv/index.js';
import { log } from '../log.js';
import { type ClusterFlags, DEFAULT_CLUSTER } from './cluster-flags.js';

export interface LocalApiOptions {
  /** Store URL (`--kv`), e.g. redis://host:6379/0; the embedded store when absent. */
  kv?: string;
  /**
   * The daemon's own controller: its store is the host's (recorded for the
   * fallbacks). Anything else is a fallback, which must use the store the
   * daemon recorded (src/kv/daemon-store.ts).
   */
  daemon?: boolean;
  /** The daemon socket the CLI tried first (for messages). */
  socket?: string;
  /** The daemon's cluster settings (used on a shared store). */
  cluster?: ClusterFlags;
}

/** A store URL fit for logs and health reports: no credentials. */
export function describeStore(kv: KvStore, url: string | undefined): string {
  return url ? describeStoreUrl(url) : `${kv.backend} (embedded default)`;
}

/**
 * The routes of this namespace (the host's) that a new network's subnet
 * must not overlap: the main table of both families, without the default
 * routes (every subnet is inside those) and without routes through
 * netctl's own links (its networks, which the IPAM keeps apart already).
 */
export async function hostRoutes(): Promise<HostRoute[]> {
  const h = Netlink.open();
  try {
    // Routes before links: a link made between the two lists (a racing
    // create's bridge) then has no route here, and a route whose link is
    // gone from the later list went with its link.
    const routes = [...(await routeList(h, { family: 4 })), ...(await routeList(h, { family: 6 }))];
    const links = new Map((await linkList(h)).map((l) => [l.index, l]));
    return routes.flatMap((r) => {
      const link = r.linkIndex === undefined ? undefined : links.get(r.linkIndex);
      if (r.linkIndex !== undefined && !link) return [];
      if (r.dst === 'default' || (link && linkOwner(link))) return [];
      return [{ dst: r.dst, ...(link ? { dev: link.name } : {}) }];
    });
  } finally {
    h.close();
  }
}

/** This namespace's underlay: the address other hosts reach it at, and the MTU of its interface. */
export async function underlay(advertiseAddr: string | undefined): Promise<{ address: string; mtu: number }> {
  const h = Netlink.open();
  try {
    const addrs = await addrList(h);
    let address = advertiseAddr;
    if (!address) {
      const route = (await routeList(h, { family: 4 })).find((r) => r.dst === 'default');
      address =
        route?.src ?? addrs.find((a) => a.index === route?.linkIndex && a.family === 4 && a.scope === 0)?.ip;
      if (!address)
        throw new Errors.InvalidRequest(
          'no default route to take an advertise address from: give --advertise-addr',
        );
    }
    const holder = addrs.find((a) => a.ip === address);
    if (!holder)
      throw new Errors.InvalidRequest(`advertise address ${address} is not an address of this host`);
    const link = (await linkList(h)).find((l) => l.index === holder.index);
    return { address, mtu: link?.mtu ?? 1500 };
  } finally {
    h.close();
  }
}

/**
 * The underlay as given, or as the default route says; with no
 * --advertise-addr and no default route the daemon runs without the
 * cluster (its local networks only) and says why overlays are not served.
 */
async function underlayOrNone(advertiseAddr: string | undefined) {
  try {
    return await underlay(advertiseAddr);
  } catch (err) {
    if (advertiseAddr !== undefined) throw err;
    log.warn({ err }, 'no advertise address: overlay networks are not served on this host');
    return undefined;
  }
}

/** A controller and what it is built on, closed together. */
export interface Composed {
  api: Controller;
  /** netctl's IPAM on the same store: the CNI IPAM plugin and Docker's IPAM driver use it directly. */
  ipam: Ipam;
  close(): Promise<void>;
}

export async function createLocalApi(options: LocalApiOptions = {}): Promise<Composed> {
  const url = options.daemon ? options.kv : fallbackStoreUrl(options.kv);
  const opened = await openStore(url);
  // On a store other hosts share, this host's own keys under its own root (kv/scoped.ts).
  const shared = opened.backend !== 'lmdb';
  const kv = shared ? new HostScopedStore(opened, hostId()) : opened;
  const flags = options.daemon && shared ? (options.cluster ?? DEFAULT_CLUSTER) : undefined;
  const place = flags ? await underlayOrNone(flags.advertiseAddr) : undefined;
  const firewall = iptablesBackend();
  const bridge = new BridgeDriver({ firewall });
  // Everywhere, so that `-d overlay` on the embedded store is refused for what it is.
  const overlay = new OverlayDriver({
    firewall,
    advertiseAddr: place?.address ?? '',
    underlayMtu: place?.mtu ?? 1500,
  });
  const ipam = new Ipam(kv);
  const cluster = place && flags ? { hostId: hostId(), address: place.address } : undefined;
  const api = new Controller({
    state: new State(kv, cluster),
    ipam: new KvIpamDriver(ipam),
    drivers: [bridge, overlay, new HostDriver(), new NoneDriver()],
    storeName: describeStore(kv, url),
    hostRoutes,
    ...(cluster && flags
      ? {
          cluster: {
            ...cluster,
            ttlMs: flags.hostTtlMs,
            renewMs: flags.hostRenewMs,
            resyncMs: flags.resyncMs,
            reapAfterMs: flags.reapAfterMs,
          },
        }
      : {}),
  });
  return {
    api,
    ipam,
    async close() {
      await api.close();
      bridge.close();
      overlay.close();
      await kv.close();
    },
  };
}
