/** src/ipam: address pools and allocation, state in the KV store. */
export { KvIpamDriver } from './driver.js';
export * from './errors.js';
export * from './ipam.js';
export * from './pool.js';
export { IpamStore, ipamKeys } from './store.js';
