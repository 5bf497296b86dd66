/**
 * This host in the cluster (docs/overlay.md): its host record under a lease
 * it renews, and the control plane of global networks — every peer record
 * of the shared store watched, and the remote ones of each network this
 * host serves (has endpoints on) programmed through the driver as static
 * FDB and neighbour entries, within a watch event of their write.
 *
 * Generations: a peer's is the store revision of its record's last write
 * (its version), so a late or replayed update never undoes a newer one —
 * the watch delivers each key's changes in revision order and drops what
 * is older than what it delivered (kv/watch.ts). A periodic diff of the
 * kernel's entries against the records repairs drift and counts it.
 *
 * A host whose lease expires is gone: its peers are unprogrammed at once on
 * every other host; its records stay until it returns or a cleanup takes
 * them. While the store is out of reach the kernel keeps the last peers
 * (the data path keeps working), and the watch's resync on reconnect
 * brings the net change.
 */
import { hostname } from 'node:os';
import {
  type Driver,
  hasPeerProgramming,
  type PeerProgramming,
  type ProgrammedPeer,
} from '../core/driver.js';
import { type IpamDriver, releasesByOwner } from '../core/ipam.js';
import type { HostRecord, Network, Peer } from '../core/model.js';
import { Errors } from '../errors.js';
import { KvConflictError, type KvEvent, type KvStore, type KvWatch } from '../kv/index.js';
import { log } from '../log.js';
import { endpointOwner, isDockerAddressOwner } from '../owners.js';
import { packageVersion } from '../paths.js';
import { bootId } from '../sandbox/identity.js';
import { Lane } from '../serial.js';
import type { ClusterHealth, HostStatus, NetworkPeer } from './api.js';
import type { State } from './state.js';

/** What the overlay needs of the controller: the records, and the drivers by type. */
export interface OverlayContext {
  readonly state: State;
  readonly ipam: IpamDriver;
  driver(type: string): Driver;
}

import { clusterKeys } from './keys.js';

export interface ClusterOptions {
  hostId: string;
  /** The host's underlay address: its VTEP. */
  address: string;
  /** Lease of the host record; renewed every renewMs. */
  ttlMs: number;
  renewMs: number;
  /** Period of the kernel-against-store diff. */
  resyncMs: number;
  /** How long a host may be gone before its endpoints' records and addresses are released. */
  reapAfterMs: number;
}

interface Known {
  peer: Peer;
  version: number;
}

const PEER_KEY = new RegExp(`^${clusterKeys.peers}([0-9a-f]{64})/([0-9a-f]{64})$`);

export class Overlay {
  private readonly peers = new Map<string, Map<string, Known>>();
  private readonly hosts = new Map<string, HostRecord>();
  /** Per served network: what was programmed, by MAC. */
  private readonly served = new Map<string, Map<string, ProgrammedPeer>>();
  private readonly lane = new Lane();
  private readonly watches: KvWatch[] = [];
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly started = new Date().toISOString();
  private repairs = 0;
  private reaped = 0;
  /** Hosts whose lease is gone while peer records of theirs remain: since when (reapGone). */
  private readonly goneSince = new Map<string, number>();
  /** When the first renewal of the current outage failed; undefined while renewals succeed. */
  private renewFailedAt: number | undefined;
  /** Until then, host expiries are rechecked before they are believed (inGrace). */
  private graceUntil = 0;
  private closed = false;

  constructor(
    private readonly ctx: OverlayContext,
    readonly options: ClusterOptions,
  ) {}

  private get kv(): KvStore {
    return this.ctx.state.kv;
  }

  get hostId(): string {
    return this.options.hostId;
  }

  /** Register, watch, and sync every global network this host has devices of. */
  async start(): Promise<void> {
    await this.register();
    this.timers.push(
      setInterval(() => {
        this.register().catch((err: unknown) => log.warn({ err }, 'host lease renewal failed'));
      }, this.options.renewMs).unref(),
    );
    this.follow(await this.kv.watch(clusterKeys.hosts, { initial: true }), (e) => this.onHost(e));
    this.follow(await this.kv.watch(clusterKeys.peers, { initial: true }), (e) => this.onPeer(e));
    for (const network of await this.ctx.state.networks())
      if (network.scope === 'global') await this.sync(network, false);
    this.timers.push(
      setInterval(() => {
        this.resyncAll().catch((err: unknown) => log.warn({ err }, 'overlay resync failed'));
      }, this.options.resyncMs).unref(),
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers.splice(0)) clearInterval(t);
    for (const w of this.watches.splice(0)) w.close();
    await this.lane.run(async () => undefined);
  }

  private async register(): Promise<void> {
    const record: HostRecord = {
      id: this.options.hostId,
      hostname: hostname(),
      address: this.options.address,
      bootId: bootId(),
      version: packageVersion,
      started: this.started,
      ttlMs: this.options.ttlMs,
    };
    try {
      await this.kv.put(clusterKeys.host(record.id), record as never, { ttlMs: this.options.ttlMs });
      // A listing makes Redis reap the leases that expired and announce them
      // (kv/redis.ts): a dead host is heard within a renewal, not a watch resync.
      await this.kv.list(clusterKeys.hosts);
    } catch (err) {
      this.renewFailedAt ??= Date.now();
      throw err;
    }
    if (this.renewFailedAt !== undefined) {
      // Back after an outage: every lease may have expired meanwhile, the
      // live hosts' too. Their deletes are not believed until they could renew.
      this.renewFailedAt = undefined;
      this.graceUntil = Date.now() + this.options.ttlMs;
    }
  }

  /** While this daemon cannot renew, or for a TTL after, a host's expiry may be the store's outage. */
  private inGrace(): boolean {
    return this.renewFailedAt !== undefined || Date.now() < this.graceUntil;
  }

  private follow(watch: KvWatch, handle: (event: KvEvent) => Promise<void>): void {
    this.watches.push(watch);
    void (async () => {
      for await (const event of watch) {
        await this.lane
          .run(() => handle(event))
          .catch((err: unknown) => log.warn({ err, key: event.key }, 'overlay event not applied'));
      }
    })();
  }

  private driverOf(network: Network): PeerProgramming {
    const driver = this.ctx.driver(network.driver);
    if (!hasPeerProgramming(driver)) throw new Errors.InvalidRequest(`driver ${network.driver} has no peers`);
    return driver;
  }

  /** Is this peer one to program here: another host's, and that host alive. */
  private wanted(peer: Peer): boolean {
    return peer.host !== this.options.hostId && this.hosts.has(peer.host);
  }

  private async onPeer(event: KvEvent): Promise<void> {
    const match = PEER_KEY.exec(event.key);
    if (!match) return;
    const [, networkId, endpointId] = match as unknown as [string, string, string];
    let ofNetwork = this.peers.get(networkId);
    const before = ofNetwork?.get(endpointId);
    if (event.type === 'put') {
      if (before && before.version >= event.version) return; // an older generation
      if (!ofNetwork) {
        ofNetwork = new Map();
        this.peers.set(networkId, ofNetwork);
      }
      const peer = event.value as unknown as Peer;
      ofNetwork.set(endpointId, { peer, version: event.version });
      if (before && before.peer.mac !== peer.mac) await this.unprogram(networkId, before.peer);
      if (this.wanted(peer)) await this.program(networkId, peer);
      return;
    }
    if (!before || before.version > event.version) return;
    ofNetwork?.delete(endpointId);
    if (ofNetwork?.size === 0) this.peers.delete(networkId);
    await this.unprogram(networkId, before.peer);
  }

  private async onHost(event: KvEvent): Promise<void> {
    const hostId = event.key.slice(clusterKeys.hosts.length);
    const was = this.hosts.has(hostId);
    if (event.type === 'put') this.hosts.set(hostId, event.value as unknown as HostRecord);
    else if (this.inGrace() && hostId !== this.options.hostId) {
      this.recheckLater(hostId);
      return;
    } else this.hosts.delete(hostId);
    if (hostId === this.options.hostId || was === (event.type === 'put')) return;
    await this.hostChanged(hostId, event.type === 'put');
  }

  /** A host's lease went while the store may have been the one away: look again once the grace is over. */
  private recheckLater(hostId: string): void {
    const wait = Math.max(this.graceUntil - Date.now(), this.options.ttlMs);
    const timer = setTimeout(() => {
      void this.lane
        .run(async () => {
          if (this.closed || !this.hosts.has(hostId)) return;
          if (await this.kv.get(clusterKeys.host(hostId))) return; // it renewed: alive
          if (this.inGrace()) {
            this.recheckLater(hostId);
            return;
          }
          this.hosts.delete(hostId);
          await this.hostChanged(hostId, false);
        })
        .catch((err: unknown) => log.warn({ err, hostId }, 'host recheck failed'));
    }, wait);
    timer.unref();
    this.timers.push(timer);
  }

  /** A host came or went: its peers, on every network served here. */
  private async hostChanged(hostId: string, up: boolean): Promise<void> {
    if (up) this.goneSince.delete(hostId);
    else if (!this.goneSince.has(hostId)) this.goneSince.set(hostId, Date.now());
    for (const networkId of this.served.keys()) {
      for (const { peer } of this.peers.get(networkId)?.values() ?? []) {
        if (peer.host !== hostId) continue;
        if (up) await this.program(networkId, peer);
        else await this.unprogram(networkId, peer);
      }
    }
  }

  private async program(networkId: string, peer: Peer): Promise<void> {
    const programmed = this.served.get(networkId);
    if (!programmed) return;
    const network = await this.ctx.state.network(networkId);
    if (!network) return;
    if (await this.driverOf(network).addPeer(network, peer)) {
      programmed.set(peer.mac, { mac: peer.mac, vtep: peer.vtep, ips: ipsOf(peer) });
    } else this.served.delete(networkId);
  }

  private async unprogram(networkId: string, peer: Peer): Promise<void> {
    const programmed = this.served.get(networkId);
    if (!programmed?.has(peer.mac)) return;
    const network = await this.ctx.state.network(networkId);
    if (network) await this.driverOf(network).removePeer(network, peer);
    programmed.delete(peer.mac);
  }

  /**
   * Make the kernel's entries of a network match the records: every wanted
   * peer programmed, nothing else. `repair`: count what had to change (the
   * periodic diff); a first sync after the devices were made is no drift.
   */
  private async sync(network: Network, repair: boolean): Promise<void> {
    const driver = this.driverOf(network);
    const actual = await driver.programmedPeers(network);
    if (!actual) {
      this.served.delete(network.id);
      return;
    }
    await this.refresh(network.id);
    const desired = new Map<string, Peer>();
    for (const { peer } of this.peers.get(network.id)?.values() ?? [])
      if (this.wanted(peer)) desired.set(peer.mac, peer);
    const have = new Map(actual.map((p) => [p.mac, p]));
    let fixed = 0;
    for (const [mac, peer] of desired) {
      const found = have.get(mac);
      if (found && found.vtep === peer.vtep && sameIps(found.ips, ipsOf(peer))) continue;
      if (found) await driver.removePeer(network, { mac, vtep: found.vtep, ...splitIps(found.ips) });
      await driver.addPeer(network, peer);
      fixed++;
    }
    for (const [mac, found] of have) {
      if (desired.has(mac)) continue;
      await driver.removePeer(network, { mac, vtep: found.vtep, ...splitIps(found.ips) });
      fixed++;
    }
    this.served.set(
      network.id,
      new Map([...desired.values()].map((p) => [p.mac, { mac: p.mac, vtep: p.vtep, ips: ipsOf(p) }])),
    );
    if (repair && fixed) {
      this.repairs += fixed;
      log.warn({ network: network.name, fixed }, 'overlay entries drifted from the store: repaired');
    }
  }

  /**
   * Read the network's peers and the hosts from the store: a join must not
   * wait for a watch event that is still on its way. Only newer versions
   * are taken; removals are the watch's to report.
   */
  private async refresh(networkId: string): Promise<void> {
    const [peers, hosts] = await Promise.all([
      this.kv.list(clusterKeys.peersOf(networkId)),
      this.kv.list(clusterKeys.hosts),
    ]);
    let ofNetwork = this.peers.get(networkId);
    for (const e of peers) {
      const peer = e.value as unknown as Peer;
      if ((ofNetwork?.get(peer.endpointId)?.version ?? 0) >= e.version) continue;
      if (!ofNetwork) {
        ofNetwork = new Map();
        this.peers.set(networkId, ofNetwork);
      }
      ofNetwork.set(peer.endpointId, { peer, version: e.version });
    }
    for (const e of hosts) {
      const record = e.value as unknown as HostRecord;
      this.hosts.set(record.id, record);
    }
  }

  /**
   * After a local join or leave: on a join to a network served already the
   * entries are in place (nothing to read: a join costs no dumps); a first
   * join programs every peer, a leave may have taken the devices.
   */
  async changed(network: Network, change: 'join' | 'leave'): Promise<void> {
    if (this.closed || (change === 'join' && this.served.has(network.id))) return;
    // The endpoint is made either way: entries that could not be programmed
    // now are the periodic diff's to put in (an undone connect would not help).
    await this.lane
      .run(() => this.sync(network, false))
      .catch((err: unknown) => log.warn({ err, network: network.name }, 'peers not programmed yet'));
  }

  /**
   * Release what hosts gone for reapAfterMs held: their peer records, member
   * claims and cluster addresses (each peer's removal compares its version,
   * so two hosts reaping at once, or the host coming back, never take a
   * newer record). A host that comes back with a new boot cleans up its own
   * on start (its sandboxes are gone); one that comes back with the same
   * boot before the reap keeps everything.
   */
  private async reapGone(): Promise<void> {
    const now = Date.now();
    const hostsOfPeers = new Set<string>();
    for (const ofNetwork of this.peers.values())
      for (const { peer } of ofNetwork.values()) hostsOfPeers.add(peer.host);
    for (const hostId of hostsOfPeers) {
      if (hostId === this.hostId || this.hosts.has(hostId)) continue;
      // Seen gone only now (a restart of this daemon): the wait starts now.
      if (!this.goneSince.has(hostId)) this.goneSince.set(hostId, now);
    }
    for (const [hostId, since] of this.goneSince) {
      if (this.hosts.has(hostId) || now - since < this.options.reapAfterMs || this.inGrace()) continue;
      if (await this.kv.get(clusterKeys.host(hostId))) continue; // back meanwhile
      for (const ofNetwork of this.peers.values()) {
        for (const { peer, version } of [...ofNetwork.values()]) {
          if (peer.host !== hostId) continue;
          try {
            await this.kv.txn(
              [{ key: clusterKeys.peer(peer.networkId, peer.endpointId), version }],
              [
                { type: 'delete', key: clusterKeys.peer(peer.networkId, peer.endpointId) },
                { type: 'delete', key: clusterKeys.member(peer.networkId, peer.endpointId) },
              ],
            );
          } catch (err) {
            if (!(err instanceof KvConflictError)) throw err;
            continue; // rewritten meanwhile: not ours to take
          }
          if (releasesByOwner(this.ctx.ipam))
            await this.ctx.ipam.releaseOwner(endpointOwner(peer.endpointId));
          this.reaped++;
        }
      }
      await this.releaseDockerOf(hostId);
      this.goneSince.delete(hostId);
      log.info({ hostId, goneMs: now - since }, 'released the records and addresses of a host gone too long');
    }
  }

  /**
   * What a gone host's dockerd held of global networks: its adoptions
   * (which refuse the network's removal on every host) and the addresses
   * its Docker holds in their pools, by their owners (owners.ts: they name
   * the host), each taken on the version read.
   */
  private async releaseDockerOf(hostId: string): Promise<void> {
    for (const e of await this.kv.list(clusterKeys.dockerNetworks)) {
      if (!e.key.endsWith(`/${hostId}`)) continue;
      try {
        await this.kv.txn([{ key: e.key, version: e.version }], [{ type: 'delete', key: e.key }]);
      } catch (err) {
        if (!(err instanceof KvConflictError)) throw err; // adopted again meanwhile: not ours to take
      }
    }
    const { ipam } = this.ctx;
    if (!releasesByOwner(ipam)) return;
    for (const network of await this.ctx.state.networks()) {
      if (network.scope !== 'global') continue;
      for (const poolId of network.ipam.poolIds)
        for (const r of await ipam.listReservations(poolId))
          if (isDockerAddressOwner(r.owner, poolId, hostId)) await ipam.releaseOwner(r.owner);
    }
  }

  private async resyncAll(): Promise<void> {
    await this.lane.run(() => this.reapGone());
    for (const network of await this.ctx.state.networks()) {
      if (network.scope !== 'global' || this.closed) continue;
      await this.lane.run(() => this.sync(network, this.served.has(network.id)));
    }
  }

  /** The hosts with endpoints on a global network (this one included), from its peer records. */
  async networkPeers(networkId: string): Promise<NetworkPeer[]> {
    await this.lane.run(() => this.refresh(networkId));
    const byHost = new Map<string, NetworkPeer>();
    for (const { peer } of this.peers.get(networkId)?.values() ?? []) {
      const known = byHost.get(peer.host);
      if (known) known.endpoints++;
      else
        byHost.set(peer.host, {
          name: this.hosts.get(peer.host)?.hostname ?? peer.host,
          ip: peer.vtep,
          endpoints: 1,
        });
    }
    return [...byHost.values()].sort((a, b) => a.ip.localeCompare(b.ip));
  }

  /** The hosts whose leases are live, and those gone that still have peer records. */
  async listHosts(): Promise<HostStatus[]> {
    const [records, peers] = await Promise.all([
      this.kv.list(clusterKeys.hosts),
      this.kv.list(clusterKeys.peers),
    ]);
    const peersOf = new Map<string, number>();
    for (const e of peers) {
      const host = (e.value as unknown as Peer).host;
      peersOf.set(host, (peersOf.get(host) ?? 0) + 1);
    }
    const out: HostStatus[] = records.map((e) => {
      const { ttlMs: _, ...record } = e.value as unknown as HostRecord;
      return { ...record, state: 'up', peers: peersOf.get(record.id) ?? 0, self: record.id === this.hostId };
    });
    for (const [id, count] of peersOf)
      if (!out.some((h) => h.id === id))
        out.push({ id, state: 'down', peers: count, self: id === this.hostId });
    return out.sort((a, b) => (a.hostname ?? '').localeCompare(b.hostname ?? '') || a.id.localeCompare(b.id));
  }

  stats(): ClusterHealth {
    let programmed = 0;
    for (const p of this.served.values()) programmed += p.size;
    return {
      hostId: this.options.hostId,
      address: this.options.address,
      served: this.served.size,
      programmed,
      repairs: this.repairs,
      reaped: this.reaped,
    };
  }
}

function ipsOf(peer: Pick<Peer, 'ipv4' | 'ipv6'>): string[] {
  return [peer.ipv4, peer.ipv6].filter((ip): ip is string => ip !== undefined);
}

function sameIps(a: string[], b: string[]): boolean {
  return a.length === b.length && [...a].sort().join() === [...b].sort().join();
}

function splitIps(ips: string[]): { ipv4?: string; ipv6?: string } {
  const ipv4 = ips.find((ip) => !ip.includes(':'));
  const ipv6 = ips.find((ip) => ip.includes(':'));
  return { ...(ipv4 ? { ipv4 } : {}), ...(ipv6 ? { ipv6 } : {}) };
}
