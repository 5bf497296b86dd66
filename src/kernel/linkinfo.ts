/**
 * IFLA_LINKINFO, built and read as typed values. The `netlink` package
 * leaves linkinfo as a raw Buffer; nothing outside src/kernel sees it.
 */
import { ifla, rt } from 'netlink';
import { bytesToIp, familyOf, ipToBytes } from '../address.js';
import { macToBytes } from './mac.js';
import { toBuffer } from './netlink.js';
import type { Netns } from './netns.js';

// include/uapi/linux/veth.h
const VETH_INFO_PEER = 1;

/**
 * The container side of a veth, created directly in its namespace. It cannot
 * be brought up in the same request: the kernel configures the peer before
 * pairing the two, and veth_open answers ENOTCONN until then.
 */
export interface VethPeerInfo {
  name: string;
  netns?: Netns;
  mac?: string;
  mtu?: number;
}

export function vethInfo(peer: VethPeerInfo): Buffer {
  // VETH_INFO_PEER carries a whole ifinfomsg + IFLA_* attributes.
  const header = rt.formatLink({});
  const attrs: ifla.LinkAttrs = { ifname: peer.name };
  if (peer.netns) attrs.netNsFd = peer.netns.fd;
  if (peer.mac) attrs.address = macToBytes(peer.mac);
  if (peer.mtu) attrs.mtu = peer.mtu;
  const data = toBuffer((out) => out.push(VETH_INFO_PEER, [header, toBuffer(ifla.formatLinkAttrs(attrs))]));
  return toBuffer(ifla.formatInfo({ kind: 'veth', data }));
}

export function bridgeInfo(): Buffer {
  return toBuffer(ifla.formatInfo({ kind: 'bridge' }));
}

/** The VXLAN settings netctl uses (Docker's overlay: learning off, port 4789). */
export interface VxlanInfo {
  vni: number;
  local?: string;
  port: number;
  learning: boolean;
  /** Answer ARP and neighbour solicitations from the device's neighbour table (IFLA_VXLAN_PROXY). */
  proxy?: boolean;
  underlayIndex?: number;
}

export function vxlanInfo(v: VxlanInfo): Buffer {
  const port = Buffer.alloc(2);
  port.writeUInt16BE(v.port); // IFLA_VXLAN_PORT is in network byte order
  const data: ifla.Vxlan = { id: v.vni, port, learning: v.learning ? 1 : 0, proxy: v.proxy ? 1 : 0 };
  if (v.local) {
    if (familyOf(v.local) === 4) data.local = ipToBytes(v.local);
    else data.local6 = ipToBytes(v.local);
  }
  if (v.underlayIndex) data.link = v.underlayIndex;
  return toBuffer(ifla.formatInfo({ kind: 'vxlan', data: toBuffer(ifla.formatVxlan(data)) }));
}

export type ParsedLinkInfo = { kind: 'vxlan'; vxlan: VxlanInfo } | { kind: string | undefined };

export function parseLinkInfo(linkinfo: Buffer | undefined): ParsedLinkInfo {
  if (!linkinfo) return { kind: undefined };
  const info = ifla.parseInfo(linkinfo);
  if (info.kind === 'vxlan' && info.data) {
    const v = ifla.parseVxlan(info.data);
    const local = v.local ?? v.local6;
    return {
      kind: 'vxlan',
      vxlan: {
        vni: v.id ?? 0,
        port: v.port ? v.port.readUInt16BE(0) : 0,
        learning: Boolean(v.learning),
        proxy: Boolean(v.proxy),
        ...(local ? { local: bytesToIp(local) } : {}),
        ...(v.link ? { underlayIndex: v.link } : {}),
      },
    };
  }
  return { kind: info.kind };
}
