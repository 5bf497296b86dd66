/**
 * netctl's IPAM alone on the host's store, for the standalone netctl-ipam
 * CNI plugin: it needs no netlink, firewall or drivers, so its process
 * loads none of them (compose.ts wires the whole controller).
 */
import { Ipam } from '../ipam/ipam.js';
import { fallbackStoreUrl, openStore } from '../kv/index.js';

export async function openIpam(kv?: string): Promise<{ ipam: Ipam; close(): Promise<void> }> {
  const store = await openStore(fallbackStoreUrl(kv));
  return { ipam: new Ipam(store), close: () => store.close() };
}
