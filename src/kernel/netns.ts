/**
 * Network namespaces: create, open, delete, and the one way to run code
 * inside one — `withNetns(ns, fn)` with a synchronous fn.
 *
 * Only the calling thread moves (setns is per thread), and it moves back in
 * a finally block. fn must not await: any continuation would run after the
 * thread has returned, in the wrong namespace. Async work (netlink) uses a
 * socket created inside the window, which stays bound to that namespace
 * (as vishvananda/netlink GetNetlinkSocketAt and CNI's ns.Do do).
 */
import {
  closeSync,
  constants,
  fstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  type Stats,
  statSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import {
  hasErrorCode,
  KernelError,
  NetnsNotFoundError,
  NotANetnsError,
  ProtectedNetnsError,
} from './errors.js';
import { native } from './native.js';

/** Where named namespaces are pinned, as `ip netns` does. */
export const NETNS_RUN_DIR = '/run/netns';

/** An open network namespace: the fd pins it until close(). */
export interface Netns {
  /** Path it was opened from (for anonymous ones, a /proc/PID/fd path). */
  readonly path: string;
  readonly fd: number;
  /** nsfs inode: the namespace's identity, stable while it exists. */
  readonly inode: number;
  close(): void;
}

/** A namespace by path (/run/netns/x, /proc/PID/ns/net) or an open handle. */
export type NetnsRef = string | Netns;

function handle(path: string, fd: number): Netns {
  let open = true;
  return {
    path,
    fd,
    inode: fstatSync(fd).ino,
    close() {
      if (open) closeSync(fd);
      open = false;
    },
  };
}

// Not in Node's fs.constants: open(2)'s O_PATH (asm-generic/fcntl.h). libuv adds O_CLOEXEC itself.
const O_PATH = 0o10000000;

/**
 * Open the namespace at path; throws NetnsNotFoundError or NotANetnsError.
 *
 * Safe on any path: it looks before it opens. An O_PATH descriptor opens
 * nothing, so a FIFO at path cannot block the caller (and the daemon's
 * event loop with it) and a device cannot act on being opened; only a
 * regular file — which is what an nsfs file is — is then opened for real,
 * through that descriptor, so what was looked at is what is opened.
 */
export function openNetns(path: string): Netns {
  // A path ends at its first NUL for the kernel; node refuses it outright (with a TypeError).
  if (path.includes('\0')) throw new NotANetnsError(path, 'a path with a NUL byte');
  let probe: number;
  try {
    probe = openSync(path, O_PATH);
  } catch (err) {
    if (hasErrorCode(err, 'ENOENT')) throw new NetnsNotFoundError(path);
    if (hasErrorCode(err, 'ELOOP')) throw new NotANetnsError(path, 'too many levels of symbolic links');
    if (hasErrorCode(err, 'ENOTDIR')) throw new NetnsNotFoundError(path);
    if (hasErrorCode(err, 'EACCES')) throw new NotANetnsError(path, 'permission denied');
    if (hasErrorCode(err, 'ENAMETOOLONG')) throw new NotANetnsError(path, 'a path too long');
    throw err;
  }
  let fd: number;
  try {
    const stat = fstatSync(probe);
    if (!stat.isFile()) throw new NotANetnsError(path, fileKind(stat));
    fd = openSync(`/proc/self/fd/${probe}`, constants.O_RDONLY | constants.O_NONBLOCK);
  } finally {
    closeSync(probe);
  }
  try {
    // ENOTTY: not an nsfs file at all (a plain file); another type: a different namespace kind.
    if (native.namespaceType(fd) !== native.CLONE_NEWNET)
      throw new NotANetnsError(path, 'a namespace of another kind');
  } catch (err) {
    closeSync(fd);
    if (hasErrorCode(err, 'ENOTTY')) throw new NotANetnsError(path);
    throw err;
  }
  return handle(path, fd);
}

function fileKind(stat: Stats): string {
  if (stat.isFIFO()) return 'a FIFO';
  if (stat.isCharacterDevice()) return 'a character device';
  if (stat.isBlockDevice()) return 'a block device';
  if (stat.isSocket()) return 'a socket';
  if (stat.isDirectory()) return 'a directory';
  return 'not a regular file';
}

/**
 * A path where a runtime will mount a namespace later (Docker's SandboxKey
 * at Join: dockerd binds the container's netns there when the container
 * starts). Nothing there yet, or the empty file it mounts onto, is fine;
 * a namespace there must be one openUntrustedNetns takes; anything else
 * (a FIFO, a device, a symlink loop) is NotANetnsError.
 */
export function checkFutureNetns(path: string): void {
  try {
    openUntrustedNetns(path).close();
  } catch (err) {
    if (err instanceof NetnsNotFoundError) return;
    // An empty regular file that is no namespace (yet): the placeholder dockerd mounts onto.
    if (err instanceof NotANetnsError && err.found === undefined) {
      const stat = statSync(path);
      if (stat.isFile() && stat.size === 0) return;
      throw new NotANetnsError(path, 'a file that is not empty');
    }
    throw err;
  }
}

/** dev:ino of the namespaces no request from outside may name. */
function protectedNetns(): Map<string, string> {
  const found = new Map<string, string>();
  for (const [path, what] of [
    ['/proc/self/ns/net', "netctl's own network namespace"],
    ['/proc/1/ns/net', "the host's network namespace"],
  ] as const) {
    try {
      const stat = statSync(path);
      // pid 1 may share ours (a pid namespace of our own, as scripts/isolate.sh makes): ours names it.
      const id = `${stat.dev}:${stat.ino}`;
      if (!found.has(id)) found.set(id, what);
    } catch {
      // pid 1's may be out of reach (another pid namespace): then this process's stands for it.
    }
  }
  return found;
}

/**
 * A namespace a caller names (a sandbox key, CNI_NETNS, Docker's
 * SandboxKey): opened as openNetns does, and refused when it is this
 * process's own or the host's (pid 1's) — whatever the path, compared by
 * inode, so `/proc/1/../self/ns/net` is seen for what it is. Work done in
 * either would change the host's own network. Throws NetnsNotFoundError,
 * NotANetnsError or ProtectedNetnsError.
 */
export function openUntrustedNetns(path: string): Netns {
  const netns = openNetns(path);
  const stat = fstatSync(netns.fd);
  const what = protectedNetns().get(`${stat.dev}:${stat.ino}`);
  if (what) {
    netns.close();
    throw new ProtectedNetnsError(path, what);
  }
  return netns;
}

/** Path of the calling thread's own namespace. */
export const THIS_NETNS = '/proc/thread-self/ns/net';

/** The namespace the calling thread is in now. */
export function currentNetns(): Netns {
  return openNetns(THIS_NETNS);
}

// The fd of the namespace this thread is in, tracked so nested withNetns
// calls return to the right place.
let currentFd = openSync('/proc/thread-self/ns/net', 'r');

function poisoned(err: unknown): never {
  // The thread that runs JavaScript is stuck in a foreign namespace: every
  // later operation would hit the wrong network. Stop rather than corrupt.
  process.stderr.write(`netctl: fatal: cannot return to the original network namespace: ${String(err)}\n`);
  process.exit(70);
}

/**
 * Run fn with the calling thread inside ns, then return to where it was.
 * fn must be synchronous; a returned promise is rejected as a programming error.
 */
export function withNetns<T>(ns: NetnsRef, fn: () => T): T {
  const target = typeof ns === 'string' ? openNetns(ns) : ns;
  try {
    const previous = currentFd;
    native.setNetns(target.fd);
    currentFd = target.fd;
    let result: T;
    try {
      result = fn();
    } finally {
      try {
        native.setNetns(previous);
      } catch (err) {
        poisoned(err);
      }
      currentFd = previous;
    }
    if (typeof (result as { then?: unknown } | null)?.then === 'function') {
      throw new TypeError('withNetns: fn must be synchronous (it returned a promise)');
    }
    return result;
  } finally {
    if (typeof ns === 'string') target.close();
  }
}

const NAME = /^[A-Za-z0-9_.-]{1,255}$/;

/** Path of the named namespace NAME under /run/netns. */
export function netnsPath(name: string): string {
  if (!NAME.test(name) || name === '.' || name === '..') {
    throw new TypeError(`invalid network namespace name ${JSON.stringify(name)}`);
  }
  return join(NETNS_RUN_DIR, name);
}

/**
 * Create the named namespace /run/netns/NAME, like `ip netns add NAME`, and
 * return its path. Throws KernelError EEXIST when the name is taken.
 */
export function createNetns(name: string): string {
  const path = netnsPath(name);
  try {
    native.createNamedNetns(path);
  } catch (err) {
    throw asKernelError(err, `create netns ${path}`);
  }
  return path;
}

/**
 * Pin the namespace this thread is in at path (a file on a shared mount,
 * like `ip netns attach NAME $$`), so other processes can name it; an
 * existing pin of that same namespace is kept. Returns path.
 */
export function pinCurrentNetns(path: string): string {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  const here = currentNetns();
  try {
    try {
      native.pinNetns('/proc/thread-self/ns/net', path);
    } catch (err) {
      if (!hasErrorCode(err, 'EEXIST')) throw asKernelError(err, `pin this thread's netns at ${path}`);
      const pinned = openNetns(path);
      const same = pinned.inode === here.inode;
      pinned.close();
      if (!same) {
        throw new KernelError(-17, 'pinNetns', {
          path,
          operation: `pin this thread's netns at ${path} (another netns is pinned there)`,
        });
      }
    }
  } finally {
    here.close();
  }
  return path;
}

/** Delete a named namespace (by name or path), like `ip netns del`; absent is fine. */
export function deleteNetns(nameOrPath: string): void {
  const path = nameOrPath.startsWith('/') ? nameOrPath : netnsPath(nameOrPath);
  try {
    native.deleteNamedNetns(path);
  } catch (err) {
    if (hasErrorCode(err, 'ENOENT')) return;
    throw asKernelError(err, `delete netns ${path}`);
  }
}

/** Names under /run/netns, like `ip netns list`. */
export function listNetns(): string[] {
  try {
    return readdirSync(NETNS_RUN_DIR).sort();
  } catch (err) {
    if (hasErrorCode(err, 'ENOENT')) return [];
    throw err;
  }
}

/**
 * A fresh namespace held only by the returned handle: it disappears when the
 * handle is closed and nothing else holds it. Other processes can enter it
 * through its path (/proc/PID/fd/N) while it is open.
 */
export function createAnonymousNetns(): Netns {
  let fd: number;
  try {
    fd = native.createAnonymousNetns();
  } catch (err) {
    throw asKernelError(err, 'create a netns');
  }
  return handle(`/proc/${process.pid}/fd/${fd}`, fd);
}

/** The addon's Node-shaped error as a KernelError naming `operation` and the syscall that failed in it. */
function asKernelError(err: unknown, operation: string): unknown {
  const e = err as { errno?: unknown; syscall?: unknown; path?: unknown };
  if (typeof e?.errno === 'number' && typeof e.syscall === 'string') {
    return new KernelError(e.errno, e.syscall, {
      ...(typeof e.path === 'string' ? { path: e.path } : {}),
      operation: `${operation} (${e.syscall})`,
    });
  }
  return err;
}
