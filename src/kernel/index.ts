/** src/kernel: links, addresses, routes, neighbours, FDB, netns, sysctls. */
export * from './addr.js';
export * from './errors.js';
export * from './fdb.js';
export * from './link.js';
export * from './mac.js';
export * from './neigh.js';
export * from './netlink.js';
export * from './netns.js';
export * from './owner.js';
export * from './route.js';
export * from './sysctl.js';
