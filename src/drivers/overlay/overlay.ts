/**
 * The overlay driver: one layer-2 network across hosts. On each host with
 * endpoints on it, a bridge (as the bridge driver's, in the host's
 * namespace) with a VXLAN port (the network's VNI, UDP 4789, learning off,
 * ARP/ND proxy on); made with the first local endpoint, removed with the
 * last. Remote endpoints are programmed statically from the shared store
 * (controller/overlay.ts): an FDB entry MAC → VTEP on the VXLAN device, one
 * on the bridge sending the MAC to the VXLAN port, and a permanent
 * neighbour entry IP → MAC the proxy answers from — no flood-and-learn, no
 * broadcast crosses the underlay (docs/overlay.md says why).
 *
 * Every host's bridge holds the network's gateway address (an anycast
 * gateway, answered locally: ARP never crosses), so a sandbox's way out
 * and its published ports are the bridge driver's, on the host it runs
 * on, through one interface — no second gateway-bridge endpoint.
 */
import type { Capability, OwnedResource, PeerProgramming, ProgrammedPeer } from '../../core/driver.js';
import type { EndpointInfo, JoinInfo, NetworkInfo, SandboxInfo } from '../../core/info.js';
import type { Endpoint, Network, Peer } from '../../core/model.js';
import { Errors } from '../../errors.js';
import {
  ensureLink,
  fdbDel,
  fdbList,
  fdbReplace,
  linkIfExists,
  linkList,
  linkSetMaster,
  linkSetUp,
  macFromIpv4,
  neighDel,
  neighList,
  neighReplace,
  ownedLink,
  randomMac,
} from '../../kernel/index.js';
import { networkOwner } from '../../owners.js';
import { KeyedLanes } from '../../serial.js';
import { BridgeDriver, type BridgeDriverOptions, type NetworkSetup } from '../bridge/bridge.js';
import type { BridgeConfig } from '../bridge/options.js';
import { runSteps, type Step } from '../bridge/setup.js';
import { parseOverlayOptions, VXLAN_OVERHEAD } from './options.js';

export const VXLAN_PORT = 4789;

/** `ov-` / `vx-` and 12 hex digits of the network id (15 characters, IFNAMSIZ-1). */
export const overlayBridgeName = (networkId: string) => `ov-${networkId.slice(0, 12)}`;
export const vxlanName = (networkId: string) => `vx-${networkId.slice(0, 12)}`;

export interface OverlayDriverOptions extends BridgeDriverOptions {
  /** This host's underlay address: the VTEP (the daemon's --advertise-addr). */
  advertiseAddr: string;
  /** MTU of the underlay interface that holds advertiseAddr. */
  underlayMtu: number;
}

/** One lane per network: else a leave could take the devices away under a join that found them. */
const lanes = new KeyedLanes();

export class OverlayDriver extends BridgeDriver implements PeerProgramming {
  override readonly type = 'overlay';
  private readonly advertiseAddr: string;
  private readonly underlayMtu: number;

  constructor(options: OverlayDriverOptions) {
    super(options);
    this.advertiseAddr = options.advertiseAddr;
    this.underlayMtu = options.underlayMtu;
  }

  override capability(): Capability {
    return { dataScope: 'global', connectivityScope: 'global' };
  }

  protected override config(network: Pick<Network, 'id' | 'options' | 'internal'>): BridgeConfig {
    const options = parseOverlayOptions(network);
    return {
      bridgeName: overlayBridgeName(network.id),
      icc: true,
      masquerade: !network.internal,
      hostBindingIpv4: undefined,
      mtu: options.mtu ?? this.underlayMtu - VXLAN_OVERHEAD,
      internal: network.internal,
    };
  }

  pinnedVni(network: Pick<Network, 'options'>): number | undefined {
    return parseOverlayOptions(network).vni;
  }

  private vni(network: Network): number {
    const vni = Number(network.driverData.vni);
    if (!Number.isSafeInteger(vni) || vni <= 0)
      throw new Errors.InvalidRequest(`overlay network ${network.name} has no VNI`);
    return vni;
  }

  protected override steps(): Step<NetworkSetup>[] {
    return [
      ...super.steps(),
      [
        () => true,
        async ({ network, config }) => {
          const bridge = await ownedLink(this.host, config.bridgeName, networkOwner(network.id));
          const vxlan = await ensureLink(this.host, {
            kind: 'vxlan',
            name: vxlanName(network.id),
            vni: this.vni(network),
            local: this.advertiseAddr,
            port: VXLAN_PORT,
            learning: false,
            proxy: true,
            owner: networkOwner(network.id),
            ...(config.mtu ? { mtu: config.mtu } : {}),
            ...(bridge ? { master: bridge.index } : {}),
          });
          if (bridge && vxlan.masterIndex !== bridge.index)
            await linkSetMaster(this.host, vxlan, bridge.index);
          await linkSetUp(this.host, vxlanName(network.id));
          return () => this.removeLink(vxlanName(network.id), networkOwner(network.id));
        },
      ],
    ];
  }

  /** Made on a host when its first endpoint joins (join); here only the options are checked. */
  override async createNetwork(info: NetworkInfo): Promise<void> {
    this.config(info.network);
    info.setDriverData('bridge', overlayBridgeName(info.network.id));
    info.setDriverData('vxlan', vxlanName(info.network.id));
  }

  override async deleteNetwork(network: Network): Promise<void> {
    await lanes.run(network.id, () => this.teardown(network));
  }

  /** Remove the network's devices and rules; the caller holds the network's lane. */
  private async teardown(network: Network): Promise<void> {
    await this.removeLink(vxlanName(network.id), networkOwner(network.id));
    await super.deleteNetwork(network);
  }

  /** The bridge and VXLAN device, made if this is the host's first endpoint on the network. */
  private async ensureDevices(network: Network): Promise<void> {
    const owner = networkOwner(network.id);
    const [bridge, vxlan] = await Promise.all([
      ownedLink(this.host, overlayBridgeName(network.id), owner),
      ownedLink(this.host, vxlanName(network.id), owner),
    ]);
    if (bridge?.up && vxlan?.up && vxlan.masterIndex === bridge.index) return;
    // Each host's own bridge MAC: the same one on two hosts would meet across the tunnel.
    await runSteps({ network, config: this.config(network), mac: randomMac() }, this.steps());
  }

  /** An overlay endpoint's MAC is random unless asked for: one that followed the address would meet stale FDB entries of a reused address on another host. */
  override async createEndpoint(network: Network, endpoint: EndpointInfo): Promise<void> {
    const { ipv4 } = endpoint.endpoint;
    if (ipv4 && endpoint.mac === macFromIpv4(ipv4)) endpoint.setMacAddress(randomMac());
    await super.createEndpoint(network, endpoint);
  }

  override async join(
    network: Network,
    endpoint: Endpoint,
    sandbox: SandboxInfo,
    join: JoinInfo,
  ): Promise<void> {
    await lanes.run(network.id, async () => {
      await this.ensureDevices(network);
      await super.join(network, endpoint, sandbox, join);
    });
  }

  /** The last local endpoint out takes the network's devices with it. */
  override async leave(network: Network, endpoint: Endpoint): Promise<void> {
    await lanes.run(network.id, async () => {
      await super.leave(network, endpoint);
      if (!(await this.hasPorts(network))) await this.teardown(network);
    });
  }

  /** Does anything but the VXLAN device sit on the network's bridge? */
  private async hasPorts(network: Network): Promise<boolean> {
    const bridge = await linkIfExists(this.host, overlayBridgeName(network.id));
    if (!bridge) return false;
    const vxlan = vxlanName(network.id);
    return (await linkList(this.host)).some((l) => l.masterIndex === bridge.index && l.name !== vxlan);
  }

  /**
   * Work on the network's VXLAN device, in the network's lane (a last leave
   * cannot take the device away half-way); `gone` when it does not exist.
   */
  private onDevice<T>(network: Network, gone: T, fn: (link: string) => Promise<T>): Promise<T> {
    const link = vxlanName(network.id);
    return lanes.run(network.id, async () => ((await linkIfExists(this.host, link)) ? fn(link) : gone));
  }

  addPeer(network: Network, peer: Peer): Promise<boolean> {
    return this.onDevice(network, false, async (link) => {
      await fdbReplace(this.host, { link, mac: peer.mac, dst: peer.vtep });
      // On the bridge too: frames for the MAC go to the tunnel, not flooded to every local port.
      await fdbReplace(this.host, { link, mac: peer.mac, master: true });
      for (const ip of [peer.ipv4, peer.ipv6])
        if (ip) await neighReplace(this.host, { link, ip, mac: peer.mac });
      return true;
    });
  }

  removePeer(network: Network, peer: Pick<Peer, 'mac' | 'ipv4' | 'ipv6' | 'vtep'>): Promise<void> {
    return this.onDevice(network, undefined, async (link) => {
      for (const ip of [peer.ipv4, peer.ipv6]) if (ip) await neighDel(this.host, { link, ip });
      await fdbDel(this.host, { link, mac: peer.mac, master: true });
      await fdbDel(this.host, { link, mac: peer.mac, dst: peer.vtep });
    });
  }

  programmedPeers(network: Network): Promise<ProgrammedPeer[] | undefined> {
    return this.onDevice(network, undefined, (link) => this.entries(link));
  }

  /** The remote peers programmed on a VXLAN device: its static FDB entries with their neighbours. */
  private async entries(link: string): Promise<ProgrammedPeer[]> {
    const vxlan = await linkIfExists(this.host, link);
    if (!vxlan) return [];
    const byMac = new Map<string, ProgrammedPeer>();
    for (const e of await fdbList(this.host, { link: vxlan })) {
      if (e.self && e.permanent && e.dst && e.mac !== '00:00:00:00:00:00')
        byMac.set(e.mac, { mac: e.mac, vtep: e.dst, ips: [] });
    }
    const neighbours = [
      ...(await neighList(this.host, { link: vxlan, family: 4 })),
      ...(await neighList(this.host, { link: vxlan, family: 6 })),
    ];
    for (const n of neighbours) {
      if (!n.mac || !n.permanent) continue;
      const peer = byMac.get(n.mac) ?? { mac: n.mac, vtep: '', ips: [] };
      peer.ips.push(n.ip);
      byMac.set(n.mac, peer);
    }
    return [...byMac.values()];
  }

  /** The bridge driver lists every netctl link and rule of the host's namespace already. */
  override async listOwned(): Promise<OwnedResource[]> {
    return [];
  }

  override async sharedResources(): Promise<OwnedResource[]> {
    return [];
  }

  /** A host without local endpoints on the network should have none of its devices. */
  override async missing(network: Network, endpoints: Endpoint[]): Promise<string[]> {
    if (endpoints.length) return super.missing(network, endpoints);
    const bridge = await linkIfExists(this.host, overlayBridgeName(network.id));
    return bridge ? [`bridge ${bridge.name} with no endpoint of this host on it`] : [];
  }

  override async restoreNetwork(network: Network, endpoints: Endpoint[]): Promise<void> {
    if (!endpoints.length) {
      await this.deleteNetwork(network);
      return;
    }
    await lanes.run(network.id, async () => {
      await this.ensureDevices(network);
      await super.restoreNetwork(network, endpoints);
    });
  }
}
