/** The daemon's store record and the fallbacks' rule (src/kv/daemon-store.ts). */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  fallbackStoreUrl,
  KvStoreMismatchError,
  recordDaemonStore,
  recordedDaemonStore,
} from '../../../src/kv/index.js';

let stateDir: string;
beforeEach(() => {
  stateDir = mkdtempSync(join(tmpdir(), 'netctl-daemon-store-'));
});
afterEach(() => rmSync(stateDir, { recursive: true, force: true }));

describe('the store a fallback uses', () => {
  it('is whatever it asks for while no daemon ever recorded one', () => {
    expect(recordedDaemonStore({ stateDir })).toBeUndefined();
    expect(fallbackStoreUrl(undefined, { stateDir })).toBeUndefined();
    expect(fallbackStoreUrl('redis://h:6379/0', { stateDir })).toBe('redis://h:6379/0');
  });

  it("is the daemon's recorded store, in a root-only file; another is refused naming both, without credentials", () => {
    recordDaemonStore('redis://:secret@10.0.0.100:6379/0', { stateDir });
    expect(statSync(join(stateDir, 'daemon-store.json')).mode & 0o777).toBe(0o600);
    expect(fallbackStoreUrl(undefined, { stateDir })).toBe('redis://:secret@10.0.0.100:6379/0');
    expect(fallbackStoreUrl('redis://:secret@10.0.0.100:6379/0', { stateDir })).toBe(
      'redis://:secret@10.0.0.100:6379/0',
    );
    let thrown: unknown;
    try {
      fallbackStoreUrl(`lmdb://${stateDir}/state.lmdb`, { stateDir });
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(KvStoreMismatchError);
    expect((thrown as Error).message).toContain('redis://10.0.0.100:6379/0');
    expect((thrown as Error).message).not.toContain('secret');
  });

  it('the embedded store is the same store however it is spelled', () => {
    recordDaemonStore(undefined, { stateDir });
    expect(recordedDaemonStore({ stateDir })).toBeNull();
    expect(fallbackStoreUrl(undefined, { stateDir })).toBeUndefined();
    expect(fallbackStoreUrl(`lmdb://${stateDir}/state.lmdb`, { stateDir })).toBe(
      `lmdb://${stateDir}/state.lmdb`,
    );
    expect(() => fallbackStoreUrl('redis://h:6379/0', { stateDir })).toThrow(KvStoreMismatchError);
  });
});
