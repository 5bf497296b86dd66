import { execFileSync } from 'node:child_process';
import { mkdtempSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  checkFutureNetns,
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
  openUntrustedNetns,
  ProtectedNetnsError,
  withNetns,
} from '../../../src/kernel/index.js';
import { run } from '../../helpers/tools.js';
import { testNetns, uniqueName } from '../harness.js';

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
    expect(() => createNetns(ns.name)).toThrow(
      new RegExp(`^cannot create netns ${ns.path} \\(\\w+\\): EEXIST`),
    );
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

  it('refuses a path with a NUL byte or too long for the kernel as not a namespace', () => {
    // A NUL is where the kernel would stop reading: /proc/self/ns/net\0x would open this netns.
    expect(() => openNetns('/proc/self/ns/net\0x')).toThrow(
      expect.objectContaining({ name: 'NotANetnsError', found: 'a path with a NUL byte' }),
    );
    expect(() => openNetns(`/${'a'.repeat(5000)}`)).toThrow(
      expect.objectContaining({ name: 'NotANetnsError', found: 'a path too long' }),
    );
  });

  it('never blocks or opens what is not a regular file: FIFO, device, socket, directory, symlink loop', () => {
    const dir = mkdtempSync(join(tmpdir(), 'netctl-netns-'));
    try {
      execFileSync('mkfifo', [join(dir, 'fifo')]);
      symlinkSync(join(dir, 'loop'), join(dir, 'loop'));
      const cases: [string, string][] = [
        [join(dir, 'fifo'), 'a FIFO'],
        ['/dev/zero', 'a character device'],
        [dir, 'a directory'],
        [join(dir, 'loop'), 'too many levels of symbolic links'],
      ];
      const started = performance.now();
      for (const [path, found] of cases) {
        expect(() => openNetns(path)).toThrow(expect.objectContaining({ name: 'NotANetnsError', found }));
      }
      // A FIFO opened for reading blocks until a writer comes: this returned at once.
      expect(performance.now() - started).toBeLessThan(500);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses this process's own and the host's namespace from outside, by inode whatever the path", () => {
    for (const path of ['/proc/self/ns/net', `/proc/${process.pid}/ns/net`, '/proc/1/../self/ns/net']) {
      expect(() => openUntrustedNetns(path)).toThrow(ProtectedNetnsError);
    }
    // pid 1's: refused as the host's, or not even readable here (a container's sandbox).
    expect(() => openUntrustedNetns('/proc/1/ns/net')).toThrow(
      expect.objectContaining({ name: expect.stringMatching(/^(ProtectedNetnsError|NotANetnsError)$/) }),
    );
    const ns = testNetns();
    openUntrustedNetns(ns.path).close();
  });

  it('takes a future netns path that is absent or an empty placeholder, not a FIFO or a protected netns', () => {
    const dir = mkdtempSync(join(tmpdir(), 'netctl-netns-'));
    try {
      writeFileSync(join(dir, 'placeholder'), '');
      execFileSync('mkfifo', [join(dir, 'fifo')]);
      expect(() => checkFutureNetns(join(dir, 'absent'))).not.toThrow();
      expect(() => checkFutureNetns(join(dir, 'placeholder'))).not.toThrow();
      expect(() => checkFutureNetns(testNetns().path)).not.toThrow();
      expect(() => checkFutureNetns(join(dir, 'fifo'))).toThrow(NotANetnsError);
      expect(() => checkFutureNetns('/proc/self/ns/mnt')).toThrow(NotANetnsError);
      expect(() => checkFutureNetns('/proc/1/../self/ns/net')).toThrow(ProtectedNetnsError);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
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
