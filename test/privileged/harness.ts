/**
 * Fixtures for privileged tests. Every object a test makes is named with the
 * run's prefix and removed after the test; setup.ts checks after each file
 * that nothing was left behind.
 */
import { randomBytes } from 'node:crypto';
import { afterEach } from 'vitest';
import { createNetns, deleteNetns, Netlink } from '../../src/kernel/index.js';

/** Short per-process prefix: link names have a 15-character limit. */
export const PREFIX = `t${process.pid.toString(36)}`;

export function uniqueName(tag = ''): string {
  return `${PREFIX}${tag}${randomBytes(2).toString('hex')}`;
}

export interface TestNetns {
  name: string;
  path: string;
  /** A netlink handle inside it. */
  nl: Netlink;
}

const cleanups: (() => void)[] = [];

afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

/** A named netns that lives until the end of the current test. */
export function testNetns(tag = 'ns'): TestNetns {
  const name = uniqueName(tag);
  const path = createNetns(name);
  const nl = Netlink.open(path);
  cleanups.push(() => {
    nl.close();
    deleteNetns(name);
  });
  return { name, path, nl };
}

/** Register extra cleanup for the current test (runs before netns removal). */
export function onCleanup(fn: () => void): void {
  cleanups.push(fn);
}
