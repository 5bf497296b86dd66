/** src/kv: the state store interface, its backends and openStore(). */

export * from './daemon-store.js';
export * from './errors.js';
export * from './host-id.js';
export * from './open.js';
export * from './scoped.js';
export * from './store.js';
