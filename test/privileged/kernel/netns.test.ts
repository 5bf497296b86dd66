import { readlinkSync, statSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  createAnonymousNetns,
  createNetns,
  currentNetns,
  deleteNetns,
  linkList,
  listNetns,
  Netlink,
  NetnsNotFoundError,
  NotANetnsError,
  openNetns,
  withNetns,
} from '../../../src/kernel/index.js';
import { run, testNetns, uniqueName } from '../harness.js';

const threadNetns = () => readlinkSync('/proc/thread-self/ns/net');

describe('named netns', () => {
  it('creates a namespace that ip(8) sees and enters, and deletes it', () => {
    const name = uniqueName('nn');
    const path = createNetns(name);
    try {
      expect(path).toBe(`/run/netns/${name}`);
      expect(run('ip', ['netns', 'list'])).toContain(name);
      expect(listNetns()).toContain(name);
      // A different namespace from ours, with only a loopback in it.
      expect(statSync(path).ino).not.toBe(statSync('/proc/self/ns/net').ino);
      expect(run('ip', ['-o', 'link', 'show'], { netns: path })).toMatch(/^1: lo:/);
    } finally {
      deleteNetns(name);
    }
    expect(listNetns()).not.toContain(name);
    expect(() => openNetns(path)).toThrow(NetnsNotFoundError);
  });

  it('refuses a name that exists and keeps the existing namespace', () => {
    const ns = testNetns();
    const inode = statSync(ns.path).ino;
    expect(() => createNetns(ns.name)).toThrow(expect.objectContaining({ code: 'EEXIST', path: ns.path }));
    expect(statSync(ns.path).ino).toBe(inode);
  });

  it('deletes idempotently, by name or by path', () => {
    const name = uniqueName('nn');
    const path = createNetns(name);
    deleteNetns(path);
    expect(() => deleteNetns(path)).not.toThrow();
    expect(() => deleteNetns(name)).not.toThrow();
  });

  it('rejects names that are not plain file names', () => {
    for (const bad of ['', '.', '..', 'a/b', '../etc', 'x'.repeat(256)]) {
      expect(() => createNetns(bad)).toThrow(TypeError);
    }
  });
});

describe('openNetns', () => {
  it('tells a missing path from a path that is not a network namespace', () => {
    expect(() => openNetns('/run/netns/does-not-exist')).toThrow(NetnsNotFoundError);
    expect(() => openNetns('/etc/hostname')).toThrow(NotANetnsError);
    expect(() => openNetns('/proc/self/ns/mnt')).toThrow(NotANetnsError);
  });

  it('opens /proc/PID/ns/net paths and reports the namespace inode', () => {
    const ns = openNetns(`/proc/${process.pid}/ns/net`);
    try {
      expect(ns.inode).toBe(statSync('/proc/self/ns/net').ino);
    } finally {
      ns.close();
    }
  });
});

describe('withNetns', () => {
  it('runs fn inside the namespace and returns to the original one', () => {
    const ns = testNetns();
    const before = threadNetns();
    const inside = withNetns(ns.path, () => threadNetns());
    expect(inside).toBe(`net:[${statSync(ns.path).ino}]`);
    expect(threadNetns()).toBe(before);
  });

  it('nests, returning to the enclosing namespace each time', () => {
    const a = testNetns('a');
    const b = testNetns('b');
    const seen = withNetns(a.path, () => [
      threadNetns(),
      withNetns(b.path, () => threadNetns()),
      threadNetns(),
    ]);
    expect(seen).toEqual([
      `net:[${a.nl.netns.inode}]`,
      `net:[${b.nl.netns.inode}]`,
      `net:[${a.nl.netns.inode}]`,
    ]);
  });

  it('returns to the original namespace when fn throws', () => {
    const ns = testNetns();
    const before = threadNetns();
    expect(() =>
      withNetns(ns.path, () => {
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(threadNetns()).toBe(before);
  });

  it('rejects an async fn after returning to the original namespace', async () => {
    const ns = testNetns();
    const before = threadNetns();
    expect(() => withNetns(ns.path, async () => 1)).toThrow(/synchronous/);
    expect(threadNetns()).toBe(before);
  });
});

describe('anonymous netns', () => {
  it('lives while its handle is open and is enterable through its path', () => {
    const ns = createAnonymousNetns();
    try {
      expect(ns.inode).not.toBe(currentNetns().inode);
      expect(run('ip', ['-o', 'link', 'show'], { netns: ns.path })).toMatch(/^1: lo:/);
    } finally {
      ns.close();
    }
  });
});

describe('Netlink.open', () => {
  it('gives a socket that stays in its namespace after the thread returns', async () => {
    const ns = testNetns();
    run('ip', ['link', 'add', 'only-here', 'type', 'veth', 'peer', 'name', 'only-here-p'], {
      netns: ns.path,
    });
    const here = Netlink.open();
    try {
      const inside = (await linkList(ns.nl)).map((l) => l.name).sort();
      expect(inside).toEqual(['lo', 'only-here', 'only-here-p']);
      expect((await linkList(here)).map((l) => l.name)).not.toContain('only-here');
    } finally {
      here.close();
    }
  });
});
