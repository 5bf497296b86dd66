/**
 * A private podman (Debian's 4.3) with its CNI backend, for the e2e test:
 * its own containers.conf (CNI backend, plugin dirs = ours, then
 * /usr/lib/cni; network configs in a dir of ours; cgroupfs; file events),
 * its own storage.conf (root and runroot in a dir of ours, the vfs driver;
 * not /etc/containers/storage.conf, whatever that holds), and a busybox
 * image built from busybox-static and imported (no registry).
 *
 * podman runs in a mount namespace of its own, held by a holder process,
 * with tmpfs over the host paths it writes whatever its flags say (see
 * HOLDER_SCRIPT). /run/netns is shared with the test's namespace (one peer
 * group), so the netns podman makes for a container is seen by the netctl
 * daemon that runs in the test's namespace, as a host's daemon sees them.
 *
 * With `netns` (a simulated host's, bench/lib/cluster.ts) the holder, so
 * podman, conmon, the plugins they exec and the container cleanup, run in
 * that network namespace, as on that host. Several such podmans run side by
 * side: every path one writes is its own dir's or its own tmpfs, and the
 * netns it makes for containers have random names (cni-<uuid>).
 */
import { type ChildProcess, execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readlinkSync,
  rmdirSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REFERENCE_PLUGINS } from './plugin-exec.js';

const execFileAsync = promisify(execFile);

export interface Podman {
  /** The holder's pid: podman runs in its mount and network namespaces. */
  readonly pid: number;
  /** Run `podman ARGS` (inside its mount namespace, with its config); rejects with podman's own stderr. */
  run(args: string[], timeoutMs?: number): Promise<string>;
  /** Remove every container, stop whatever of podman's is still running (by PID), end the namespace. */
  stop(): Promise<void>;
}

/**
 * Debian's podman 4.3 writes two dirs under /var/lib whatever its flags say:
 * /var/lib/cni (libcni's result cache) and /var/lib/containers (the blob
 * info cache); and it copies images through /var/tmp. Neither /var/lib dir
 * exists on a machine that never ran podman, and a tmpfs needs a mount point,
 * so the tmpfs goes over /var/lib itself and the two dirs are made in it:
 * nothing is created on the host's disk, and what an earlier podman left
 * there is hidden. podman, runc, conmon and the CNI plugins read nothing
 * else under /var/lib (only `podman info` looks at /var/lib/dpkg, for the
 * package versions it shows), so nothing of the original is bound back.
 * /var/tmp is in base-files: every Debian has it.
 */
const HOLDER_SCRIPT = [
  'set -e',
  'mount -t tmpfs -o mode=755 tmpfs /var/lib',
  'mkdir /var/lib/cni /var/lib/containers',
  'mount -t tmpfs -o mode=1777 tmpfs /var/tmp',
  // podman's lock table, /dev/shm/libpod_lock: one per podman. Shared, a
  // podman's first start (its runroot new) frees every lock in it, those of
  // another podman's containers too (libpod's refresh: FreeAllLocks).
  'mount -t tmpfs -o mode=1777 tmpfs /dev/shm',
  'echo ready',
  'exec sleep infinity',
].join('\n');

/** /run/netns as a shared mount, so netns mounted in podman's namespace show in ours (as `ip netns` does). */
function shareNetnsDir(): void {
  // findmnt exits 1 when /run/netns is no mount point at all.
  const found = spawnSync('findmnt', ['-n', '-o', 'PROPAGATION', '--mountpoint', '/run/netns'], {
    encoding: 'utf8',
  });
  const propagation = found.status === 0 ? found.stdout.trim() : '';
  if (propagation === 'shared') return;
  if (propagation === '') execFileSync('mount', ['--bind', '/run/netns', '/run/netns']);
  execFileSync('mount', ['--make-shared', '/run/netns']);
}

function startHolder(netns: string | undefined): Promise<ChildProcess> {
  shareNetnsDir();
  // unchanged: /run/netns stays in the test's peer group; the rest of the
  // isolated run's mounts are private, so the tmpfs mounts stay in here.
  const unshare = ['unshare', '--mount', '--propagation', 'unchanged', '--', 'sh', '-c', HOLDER_SCRIPT];
  const [file, ...args] = netns ? ['nsenter', `--net=${netns}`, '--', ...unshare] : unshare;
  const holder = spawn(file as string, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let stderr = '';
    holder.stderr?.on('data', (d) => {
      stderr += d;
    });
    holder.stdout?.once('data', () => resolve(holder));
    holder.once('exit', (code) =>
      reject(new Error(`podman's mount namespace holder exited (${code}): ${stderr}`)),
    );
  });
}

function busyboxTar(dir: string): string {
  const root = join(dir, 'busybox-root');
  for (const d of ['bin', 'etc', 'tmp', 'proc', 'sys', 'dev', 'www'])
    mkdirSync(join(root, d), { recursive: true });
  copyFileSync('/bin/busybox', join(root, 'bin', 'busybox'));
  for (const applet of ['sh', 'cat', 'sleep', 'ping', 'ip', 'httpd', 'hostname'])
    symlinkSync('busybox', join(root, 'bin', applet));
  writeFileSync(join(root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  writeFileSync(join(root, 'www', 'index.html'), 'hello from podman\n');
  const tar = join(dir, 'busybox.tar');
  execFileSync('tar', ['-C', root, '-cf', tar, '.']);
  return tar;
}

/**
 * runc cannot run without cgroups (podman's `cgroups = "disabled"` is
 * crun's alone), so with cgroupfs podman makes libpod_parent in every
 * hierarchy of the host's cgroup tree. Those it made, stop() removes.
 */
const CGROUP_ROOT = '/sys/fs/cgroup';
function libpodCgroups(): string[] {
  return readdirSync(CGROUP_ROOT)
    .map((hierarchy) => join(CGROUP_ROOT, hierarchy, 'libpod_parent'))
    .filter((dir) => existsSync(dir));
}

/** rmdir a cgroup and its children, deepest first; one that still has processes stays (EBUSY). */
function removeCgroup(dir: string): void {
  for (const child of readdirSync(dir, { withFileTypes: true }))
    if (child.isDirectory()) removeCgroup(join(dir, child.name));
  try {
    rmdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EBUSY') throw err;
  }
}

/** The processes in the holder's mount namespace but the holder itself (podman's conmon, containers). */
function processesIn(holder: number): number[] {
  const ns = readlinkSync(`/proc/${holder}/ns/mnt`);
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p) && Number(p) !== holder)
    .filter((p) => {
      try {
        return readlinkSync(`/proc/${p}/ns/mnt`) === ns;
      } catch {
        return false; // gone meanwhile
      }
    })
    .map(Number);
}

/**
 * A podman whose CNI plugins are binDir's (then the reference ones), whose
 * network configs are confDir's, with its state under dir. env is passed on
 * to podman and so to the plugins it execs (libcni passes its environment).
 * With options.netns, everything of its runs in that network namespace.
 */
export async function startPodman(
  dir: string,
  binDir: string,
  confDir: string,
  env: Record<string, string>,
  options: { netns?: string } = {},
): Promise<Podman> {
  const conf = join(dir, 'containers.conf');
  const storageConf = join(dir, 'storage.conf');
  const podmanEnv = {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    ...env,
    CONTAINERS_CONF: conf,
    CONTAINERS_STORAGE_CONF: storageConf,
  };
  writeFileSync(
    storageConf,
    [
      '[storage]',
      'driver = "vfs"',
      `graphroot = "${join(dir, 'root')}"`,
      `runroot = "${join(dir, 'runroot')}"`,
      '',
    ].join('\n'),
  );
  writeFileSync(
    conf,
    [
      '[containers]',
      // No CAP_SYS_RESOURCE here: podman's defaults (nofile 1048576) exceed the hard limits.
      'default_ulimits = ["nofile=1024:4096", "nproc=1024:4096"]',
      '[network]',
      'network_backend = "cni"',
      `cni_plugin_dirs = ["${binDir}", "${REFERENCE_PLUGINS}"]`,
      `network_config_dir = "${confDir}"`,
      '[engine]',
      // conmon runs `podman container cleanup` (its network teardown: the CNI
      // DEL) when a container exits, with only these variables: without them
      // that podman would not find this file, nor the plugin its daemon.
      `conmon_env_vars = ${JSON.stringify(Object.entries(podmanEnv).map(([k, v]) => `${k}=${v}`))}`,
      'cgroup_manager = "cgroupfs"',
      'events_logger = "file"',
      `events_logfile_path = "${join(dir, 'events.log')}"`,
      'runtime = "runc"',
      `tmp_dir = "${join(dir, 'tmp')}"`,
      `static_dir = "${join(dir, 'static')}"`,
      `volume_path = "${join(dir, 'volumes')}"`,
      '',
    ].join('\n'),
  );
  const cgroupsBefore = new Set(libpodCgroups());
  const holder = await startHolder(options.netns);
  const pid = holder.pid as number;
  const run = async (args: string[], timeoutMs = 60_000): Promise<string> => {
    try {
      // The holder's mount namespace, and its network namespace (the caller's, or options.netns).
      const { stdout } = await execFileAsync(
        'nsenter',
        ['-t', String(pid), '-m', '-n', '--', 'podman', ...args],
        {
          env: podmanEnv,
          timeout: timeoutMs,
        },
      );
      return stdout;
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(`podman ${args.join(' ')} failed: ${e.stderr?.trim() || e.message}`);
    }
  };
  let stopped = false;
  const podman: Podman = {
    pid,
    run,
    async stop() {
      if (stopped) return;
      stopped = true;
      try {
        await run(['rm', '--all', '--force', '--time', '0']);
      } finally {
        // podman's own processes (conmon, a container cleanup) may outlive rm
        // for a moment; a cgroup can go only once they have.
        const deadline = Date.now() + 10_000;
        for (let left = processesIn(pid); left.length && Date.now() < deadline; left = processesIn(pid)) {
          for (const p of left) {
            try {
              process.kill(p, 'SIGKILL');
            } catch {
              // exited meanwhile
            }
          }
          await new Promise((r) => setTimeout(r, 50));
        }
        if (holder.exitCode === null && holder.signalCode === null) {
          const holderGone = new Promise((r) => holder.once('exit', r));
          holder.kill('SIGKILL');
          await holderGone;
        }
        for (const dir of libpodCgroups()) if (!cgroupsBefore.has(dir)) removeCgroup(dir);
      }
    },
  };
  try {
    await run(['import', busyboxTar(dir), 'localhost/busybox:latest']);
  } catch (err) {
    await podman.stop();
    throw err;
  }
  return podman;
}
