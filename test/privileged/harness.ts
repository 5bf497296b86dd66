/**
 * Fixtures for privileged tests. Every object a test makes is named with the
 * run's prefix and removed after the test; setup.ts checks after each file
 * that nothing was left behind.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { afterEach } from 'vitest';
import { createNetns, deleteNetns, Netlink } from '../../src/kernel/index.js';

/** Short per-process prefix: link names have a 15-character limit. */
export const PREFIX = `t${process.pid.toString(36)}`;

export function uniqueName(tag = ''): string {
  return `${PREFIX}${tag}${randomBytes(2).toString('hex')}`;
}

/** Run a command (for checking the kernel from outside our code) and return stdout. */
export function run(cmd: string, args: string[], options: { netns?: string } = {}): string {
  const [file, argv] = options.netns
    ? ['nsenter', [`--net=${options.netns}`, '--', cmd, ...args]]
    : [cmd, args];
  return execFileSync(file, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** `ip -j ...` in netns (or here), parsed. */
export function ipJson<T = Record<string, unknown>[]>(args: string[], netns?: string): T {
  const out = run('ip', ['-j', ...args], netns ? { netns } : {});
  return JSON.parse(out || '[]') as T;
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
