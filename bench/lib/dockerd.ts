/**
 * A real dockerd 20.10 (Debian docker.io) for tests, the way RECIPES.md
 * runs it: inside its own network namespace and a private mount namespace
 * (so its mounts and its /run die with it), with its own containerd,
 * data-root, exec-root and socket, driven with /usr/bin/docker -H.
 * Remote plugins are found at /run/docker/plugins/NAME.sock as seen inside
 * that mount namespace, which the helper maps to a host-visible directory.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createNetns, deleteNetns } from '../../../src/kernel/index.js';

const execFileAsync = promisify(execFile);

export interface Dockerd {
  /** The netns dockerd lives in (its "host"). */
  netns: string;
  /** Directory bind-mounted as /run/docker/plugins inside dockerd's mount namespace. */
  pluginDir: string;
  /** Run /usr/bin/docker against this daemon. */
  docker(args: string[], timeoutMs?: number): Promise<{ stdout: string; stderr: string }>;
  /** Run a command inside dockerd's network + mount namespaces. */
  exec(argv: string[]): Promise<{ stdout: string; stderr: string }>;
  stop(): Promise<void>;
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

function kill(child: ChildProcess | undefined): Promise<void> {
  if (!child?.pid || child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
  });
}

/** A busybox image built from busybox-static, imported without a registry (RECIPES.md). */
async function importBusybox(dir: string, docker: Dockerd['docker']): Promise<void> {
  const root = join(dir, 'busybox-root');
  for (const d of ['bin', 'etc', 'tmp', 'proc', 'sys', 'dev', 'www'])
    mkdirSync(join(root, d), { recursive: true });
  copyFileSync('/bin/busybox', join(root, 'bin', 'busybox'));
  for (const applet of [
    'sh',
    'ls',
    'cat',
    'echo',
    'sleep',
    'ping',
    'ip',
    'wget',
    'httpd',
    'nc',
    'hostname',
    'ifconfig',
    'route',
    'timeout',
  ]) {
    symlinkSync('busybox', join(root, 'bin', applet));
  }
  writeFileSync(join(root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  writeFileSync(join(root, 'www', 'index.html'), 'hello from docker\n');
  const tar = join(dir, 'busybox.tar');
  await execFileAsync('tar', ['-C', root, '-cf', tar, '.']);
  await docker(['import', tar, 'busybox:latest'], 60_000);
}

export async function startDockerd(name: string): Promise<Dockerd> {
  const dir = mkdtempSync(join(tmpdir(), 'netctl-dockerd-'));
  const netns = createNetns(name);
  const pluginDir = join(dir, 'plugins');
  mkdirSync(pluginDir, { recursive: true });
  mkdirSync(join(dir, 'ctd'), { recursive: true });
  writeFileSync(
    join(dir, 'ctd', 'config.toml'),
    [
      'version = 2',
      `root = "${dir}/ctd/root"`,
      `state = "${dir}/ctd/state"`,
      '[grpc]',
      `  address = "${dir}/ctd/ctd.sock"`,
      '[plugins."io.containerd.grpc.v1.cri"]',
      '  disable = true',
      '',
    ].join('\n'),
  );
  const socket = join(dir, 'docker.sock');
  // One holder process keeps the private mount namespace (tmpfs /run with the
  // plugin dir bound in); containerd and dockerd are started inside it.
  const script = [
    'set -e',
    'mount -t tmpfs -o mode=755 tmpfs /run',
    'mkdir -p /run/docker/plugins /run/netns /run/lock',
    `mount --bind ${pluginDir} /run/docker/plugins`,
    'ip link set lo up',
    `containerd --config ${dir}/ctd/config.toml >${dir}/containerd.log 2>&1 &`,
    `echo $! >${dir}/containerd.pid`,
    `exec dockerd --containerd ${dir}/ctd/ctd.sock --data-root ${dir}/data --exec-root ${dir}/exec --pidfile ${dir}/dockerd.pid -H unix://${socket} --bridge none --iptables=true --userland-proxy=false --storage-driver overlay2 >${dir}/dockerd.log 2>&1`,
  ].join('\n');
  const holder = spawn(
    'nsenter',
    [`--net=${netns}`, '--', 'unshare', '--mount', '--propagation', 'slave', '--', 'sh', '-c', script],
    {
      stdio: 'ignore',
    },
  );
  const docker: Dockerd['docker'] = async (args, timeoutMs = 30_000) =>
    execFileAsync('/usr/bin/docker', ['-H', `unix://${socket}`, ...args], { timeout: timeoutMs });
  const self: Dockerd = {
    netns,
    pluginDir,
    docker,
    exec: async (argv) => {
      const pid = readFileSync(join(dir, 'dockerd.pid'), 'utf8').trim();
      return execFileAsync('nsenter', ['-t', pid, '-m', '-n', '--', ...argv], { timeout: 30_000 });
    },
    async stop() {
      // nsenter, unshare and sh exec: the holder's pid is dockerd's. dockerd
      // stops its containers; then containerd, by the pid it was started with.
      await kill(holder);
      const ctd = existsSync(join(dir, 'containerd.pid'))
        ? Number(readFileSync(join(dir, 'containerd.pid'), 'utf8'))
        : 0;
      if (ctd > 0) {
        try {
          process.kill(ctd, 'SIGTERM');
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
        }
      }
      deleteNetns(name);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await waitFor(
      async () =>
        existsSync(socket) &&
        (await docker(['version']).then(
          () => true,
          () => false,
        )),
      60_000,
      'dockerd',
    );
    await importBusybox(dir, docker);
  } catch (err) {
    const log = existsSync(join(dir, 'dockerd.log'))
      ? readFileSync(join(dir, 'dockerd.log'), 'utf8').slice(-2000)
      : '';
    await self.stop();
    throw new Error(`${(err as Error).message}\n${log}`);
  }
  return self;
}
