import { describe, expect, it } from 'vitest';
import { KernelError, LinkNotFoundError, linkLabel } from '../../../src/kernel/errors.js';
import { parseLinkInfo, vethInfo, vxlanInfo } from '../../../src/kernel/linkinfo.js';
import { bytesToMac, macFromIpv4, macToBytes, randomMac } from '../../../src/kernel/mac.js';

describe('MAC addresses', () => {
  it('round-trips and rejects malformed text', () => {
    expect(bytesToMac(macToBytes('02:42:AC:11:00:02'))).toBe('02:42:ac:11:00:02');
    for (const bad of ['02:42:ac:11:00', '02-42-ac-11-00-02', 'zz:42:ac:11:00:02', '']) {
      expect(() => macToBytes(bad)).toThrow(TypeError);
    }
  });

  it('makes random unicast, locally administered addresses', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const mac = randomMac();
      const first = macToBytes(mac)[0] ?? 0;
      expect(first & 0x01, mac).toBe(0); // unicast
      expect(first & 0x02, mac).toBe(0x02); // locally administered
      seen.add(mac);
    }
    expect(seen.size).toBe(200);
  });

  it('derives 02:42 and the IPv4 address, as Docker did', () => {
    expect(macFromIpv4('172.17.0.2/16')).toBe('02:42:ac:11:00:02');
    expect(macFromIpv4('10.255.0.1')).toBe('02:42:0a:ff:00:01');
    expect(() => macFromIpv4('fd00::1/64')).toThrow(TypeError);
  });
});

describe('IFLA_LINKINFO builders', () => {
  it('nests a whole ifinfomsg and attributes for the veth peer', () => {
    const info = vethInfo({ name: 'eth0', mac: '02:00:00:00:00:01', mtu: 1450 });
    // IFLA_INFO_KIND "veth\0" first.
    expect(info.readUInt16LE(0)).toBe(9);
    expect(info.readUInt16LE(2)).toBe(1);
    expect(info.subarray(4, 8).toString()).toBe('veth');
    // IFLA_INFO_DATA > VETH_INFO_PEER > ifinfomsg (16 bytes) + IFLA_IFNAME "eth0".
    const data = info.subarray(12);
    expect(data.readUInt16LE(2)).toBe(2); // IFLA_INFO_DATA
    const peer = data.subarray(4);
    expect(peer.readUInt16LE(2)).toBe(1); // VETH_INFO_PEER
    const ifname = peer.subarray(4 + 16);
    expect(ifname.readUInt16LE(2)).toBe(3); // IFLA_IFNAME
    expect(ifname.subarray(4, 8).toString()).toBe('eth0');
    expect(info.includes(Buffer.from([0x02, 0, 0, 0, 0, 0x01]))).toBe(true);
  });

  it('writes the VXLAN port in network byte order and reads it back', () => {
    const info = vxlanInfo({ vni: 4097, port: 4789, learning: false, proxy: true, local: '192.0.2.1' });
    expect(parseLinkInfo(info)).toEqual({
      kind: 'vxlan',
      vxlan: { vni: 4097, port: 4789, learning: false, proxy: true, local: '192.0.2.1' },
    });
    expect(info.includes(Buffer.from([0x12, 0xb5]))).toBe(true); // 4789 big-endian
  });
});

describe('KernelError', () => {
  it('names errnos as Node does, and the Linux-only ones Node cannot', () => {
    expect(new KernelError(-17, 'RTM_NEWLINK')).toMatchObject({
      code: 'EEXIST',
      message: 'RTM_NEWLINK: EEXIST (file already exists)',
    });
    expect(new KernelError(-54, 'RTM_NEWLINK')).toMatchObject({
      code: 'EXFULL',
      message: 'RTM_NEWLINK: EXFULL (exchange full)',
    });
  });

  it('says which operation on which object failed, keeping the errno and syscall', () => {
    expect(new KernelError(-17, 'RTM_NEWLINK', { operation: 'add link "br-abc" (bridge)' })).toMatchObject({
      errno: -17,
      code: 'EEXIST',
      syscall: 'RTM_NEWLINK',
      operation: 'add link "br-abc" (bridge)',
      message: 'cannot add link "br-abc" (bridge): EEXIST (file already exists)',
    });
  });
});

describe('linkLabel', () => {
  it('quotes names and numbers indexes, as LinkNotFoundError says them', () => {
    expect(linkLabel('br0')).toBe('"br0"');
    expect(linkLabel(7)).toBe('#7');
    expect(linkLabel({ index: 7 })).toBe('#7');
    expect(linkLabel({ index: 7, name: 'br0' })).toBe('"br0"');
    expect(new LinkNotFoundError(7).message).toBe('link #7 not found');
  });
});
