/** MAC addresses as "aa:bb:cc:dd:ee:ff" strings at the API, bytes on the wire. */
import { randomBytes } from 'node:crypto';
import { ipToBytes } from '../address.js';

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

export function macToBytes(mac: string): Buffer {
  if (!MAC.test(mac)) throw new TypeError(`invalid MAC address ${JSON.stringify(mac)}`);
  return Buffer.from(mac.split(':').map((h) => Number.parseInt(h, 16)));
}

export function bytesToMac(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(':');
}

/**
 * A random unicast, locally administered MAC (first octet xxxxxx10), the
 * kind the kernel itself gives veths and bridges.
 */
export function randomMac(): string {
  const bytes = randomBytes(6);
  bytes[0] = ((bytes[0] ?? 0) & 0xfe) | 0x02;
  return bytesToMac(bytes);
}

/**
 * The MAC Docker's bridge driver gave a container until v25: 02:42 and the
 * IPv4 address. Unique on the network, and the same each time the address
 * is handed out again, so peers' ARP caches stay right without a gratuitous
 * ARP flooded to every port of the bridge.
 */
export function macFromIpv4(address: string): string {
  const ip = address.split('/')[0] ?? '';
  const bytes = ipToBytes(ip);
  if (bytes.length !== 4) throw new TypeError(`not an IPv4 address: ${JSON.stringify(address)}`);
  return bytesToMac(Buffer.concat([Buffer.from([0x02, 0x42]), bytes]));
}
