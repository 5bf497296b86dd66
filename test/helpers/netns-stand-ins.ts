/**
 * Plain files standing for network namespaces in unit tests, which run no
 * kernel code: a FakeApi given `checkKey` takes them as sandbox keys, and
 * checks any other key as the controller does (a missing path, netctl's
 * own namespace, a FIFO are refused for real).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkSandboxKey } from '../../src/controller/sandbox-key.js';

export interface NetnsStandIns {
  /** A stand-in named name (made on first use). */
  path(name: string): string;
  /** FakeApi's key check: stand-ins pass, the rest is checked for real. */
  checkKey(key: string): void;
  remove(): void;
}

export function netnsStandIns(): NetnsStandIns {
  const dir = mkdtempSync(join(tmpdir(), 'netctl-netns-stand-ins-'));
  const made = new Set<string>();
  return {
    path(name) {
      const path = join(dir, name);
      if (!made.has(path)) writeFileSync(path, '');
      made.add(path);
      return path;
    },
    checkKey(key) {
      if (!made.has(key)) checkSandboxKey(key);
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
