/** MAC addresses as "aa:bb:cc:dd:ee:ff" strings at the API, bytes on the wire. */
import { randomBytes } from 'node:crypto';

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
