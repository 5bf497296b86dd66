/**
 * A real dockerd 20.10 (Debian docker.io) for tests and benchmarks, the way
 * RECIPES.md runs it: inside its own network namespace and a private mount
 * namespace (so its mounts and its /run die with it), with its own
 * containerd, data-root, exec-root and socket, driven with /usr/bin/docker -H.
 *
 * A holder process keeps the two namespaces; containerd and dockerd are
 * started inside them with nsenter, so dockerd can be stopped and started
 * again on the same data (a dockerd restart) while the namespaces, the
 * containers' netns and whatever else runs there (a netctl daemon) stay.
 * Remote plugins are found at /run/docker/plugins/NAME.sock as seen inside
 * that mount namespace, which is bound to a host-visible directory.
 *
 * `startDockerd(name, {netns, pluginDir})` runs it in a netns that exists (a
 * simulated host of bench/lib/cluster.ts) with that host's daemon's plugin
 * dir, the daemon staying in the caller's mount namespace: the netns
 * dockerd binds for its containers (<exec-root>/netns/<id>, Docker's
 * SandboxKey) must be visible there, so that one directory is a shared
 * mount, in the same peer group inside and out, while every other mount
 * inside stays private (scripts/isolate.sh makes the caller's private).
 * The netns is the caller's: stop() leaves it.
 *
 * A mount namespace keeps mounts private, not files: every path dockerd,
 * containerd and the docker CLI would write by default, and the config
 * files they would read, are pointed into the temp dir, so a machine that
 * never ran Docker gets nothing on its disk, and what a Docker of its own
 * left there (daemon.json, key.json, ~/.docker) changes nothing here.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { isolationProblem } from '../../src/isolation.js';
import { createNetns, deleteNetns } from '../../src/kernel/index.js';

const execFileAsync = promisify(execFile);

export interface Dockerd {
  /** The netns dockerd lives in (its "host"). */
  netns: string;
  /** Directory bind-mounted as /run/docker/plugins inside dockerd's mount namespace. */
  pluginDir: string;
  /** A directory of this dockerd's (temp, removed by stop()) for the caller's files. */
  dir: string;
  /** `nsenter` arguments that run a program inside dockerd's network + mount namespaces. */
  nsenter: string[];
  /** Run /usr/bin/docker against this daemon. */
  docker(args: string[], timeoutMs?: number): Promise<{ stdout: string; stderr: string }>;
  /** Run a command inside dockerd's network + mount namespaces. */
  exec(argv: string[], timeoutMs?: number): Promise<{ stdout: string; stderr: string }>;
  /**
   * Stop dockerd alone, then start it again on the same data: SIGTERM (it
   * stops its containers first, unless it runs with --live-restore), or
   * SIGKILL with `crash` (they keep running until the new dockerd restores
   * them). `args`: more dockerd arguments from now on (e.g. --live-restore).
   */
  restart(options?: { crash?: boolean; args?: string[] }): Promise<void>;
  /** dockerd's log so far (its last lines). */
  log(): string;
  stop(): Promise<void>;
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** SIGTERM, then SIGKILL after graceMs (0: SIGKILL at once); resolves when it has exited. */
function kill(child: ChildProcess | undefined, graceMs = 20_000): Promise<void> {
  if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    if (graceMs === 0) {
      child.kill('SIGKILL');
      return;
    }
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), graceMs).unref();
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

export interface DockerdOptions {
  /** Run in this netns (it stays after stop()), the containers' netns visible outside; default a new one, `name`. */
  netns?: string;
  /** The directory to bind as /run/docker/plugins; default one in dockerd's temp dir. */
  pluginDir?: string;
}

/** `DIR` a mount of its own with shared propagation: what is mounted under it inside a namespace made with `--propagation unchanged` shows here too. */
async function shareOut(path: string): Promise<void> {
  await execFileAsync('mount', ['--bind', path, path]);
  await execFileAsync('mount', ['--make-shared', path]);
}

export async function startDockerd(name: string, options: DockerdOptions = {}): Promise<Dockerd> {
  const problem = options.netns ? isolationProblem() : undefined;
  if (problem)
    throw new Error(`startDockerd: a shared mount needs scripts/isolate.sh's mount namespace (${problem})`);
  const dir = mkdtempSync(join(tmpdir(), 'netctl-dockerd-'));
  const netns = options.netns ?? createNetns(name);
  const pluginDir = options.pluginDir ?? join(dir, 'plugins');
  mkdirSync(pluginDir, { recursive: true });
  // Docker's SandboxKeys: <exec-root>/netns/<sandbox id>.
  const netnsDir = join(dir, 'exec', 'netns');
  if (options.netns) {
    mkdirSync(netnsDir, { recursive: true });
    await shareOut(netnsDir);
  }
  mkdirSync(join(dir, 'ctd'), { recursive: true });
  writeFileSync(
    join(dir, 'ctd', 'config.toml'),
    [
      'version = 2',
      `root = "${dir}/ctd/root"`,
      `state = "${dir}/ctd/state"`,
      '[grpc]',
      `  address = "${dir}/ctd/ctd.sock"`,
      // Its default, /opt/containerd, is made at start-up (bin/ and lib/).
      '[plugins."io.containerd.internal.v1.opt"]',
      `  path = "${dir}/ctd/opt"`,
      '[plugins."io.containerd.grpc.v1.cri"]',
      '  disable = true',
      '',
    ].join('\n'),
  );
  // dockerd reads /etc/docker/daemon.json unless told another file; 20.10
  // makes /etc/docker/key.json (its engine ID) unless this file names another
  // (a daemon.json key, not a flag).
  writeFileSync(
    join(dir, 'daemon.json'),
    `${JSON.stringify({ 'deprecated-key-path': join(dir, 'key.json') })}\n`,
  );
  // The docker CLI's: not ~/.docker/config.json (nor ~/.dockercfg when that
  // is missing), whose formats and proxies would change what docker does.
  mkdirSync(join(dir, 'docker-config'));
  writeFileSync(join(dir, 'docker-config', 'config.json'), '{}\n');
  const socket = join(dir, 'docker.sock');
  const ready = join(dir, 'holder.ready');
  // The holder keeps the private mount namespace (tmpfs /run with the plugin
  // dir bound in) and the netns; nsenter, unshare and sh exec, so its pid is
  // the one the others enter.
  const script = [
    'set -e',
    'mount -t tmpfs -o mode=755 tmpfs /run',
    'mkdir -p /run/docker/plugins /run/netns /run/lock',
    `mount --bind ${pluginDir} /run/docker/plugins`,
    'ip link set lo up',
    `touch ${ready}`,
    'exec sleep infinity',
  ].join('\n');
  const propagation = options.netns ? 'unchanged' : 'slave';
  const holder = spawn(
    'nsenter',
    [`--net=${netns}`, '--', 'unshare', '--mount', '--propagation', propagation, '--', 'sh', '-c', script],
    { stdio: 'ignore' },
  );
  const nsenter = ['-t', String(holder.pid), '-m', '-n', '--'];
  const inside = (argv: string[], logName: string): ChildProcess => {
    const fd = openSync(join(dir, logName), 'a');
    try {
      return spawn('nsenter', [...nsenter, ...argv], { stdio: ['ignore', fd, fd] });
    } finally {
      closeSync(fd);
    }
  };
  let containerd: ChildProcess | undefined;
  let dockerd: ChildProcess | undefined;
  let extraArgs: string[] = [];
  const docker: Dockerd['docker'] = async (args, timeoutMs = 30_000) =>
    execFileAsync('/usr/bin/docker', ['-H', `unix://${socket}`, ...args], {
      timeout: timeoutMs,
      env: { ...process.env, DOCKER_CONFIG: join(dir, 'docker-config') },
    });
  const answers = () =>
    docker(['version'], 5000).then(
      () => true,
      () => false,
    );
  const startDaemon = async () => {
    dockerd = inside(
      [
        'dockerd',
        '--containerd',
        `${dir}/ctd/ctd.sock`,
        '--data-root',
        `${dir}/data`,
        '--exec-root',
        `${dir}/exec`,
        '--pidfile',
        `${dir}/dockerd.pid`,
        '--config-file',
        `${dir}/daemon.json`,
        '-H',
        `unix://${socket}`,
        '--bridge',
        'none',
        '--iptables=true',
        '--userland-proxy=false',
        '--storage-driver',
        'overlay2',
        ...extraArgs,
      ],
      'dockerd.log',
    );
    const exited = dockerd;
    await waitFor(
      async () => {
        if (exited.exitCode !== null) throw new Error(`dockerd exited (${exited.exitCode})`);
        return existsSync(socket) && (await answers());
      },
      60_000,
      'dockerd',
    );
  };
  const dockerLog = () =>
    existsSync(join(dir, 'dockerd.log')) ? readFileSync(join(dir, 'dockerd.log'), 'utf8').slice(-4000) : '';

  const self: Dockerd = {
    netns,
    pluginDir,
    dir,
    nsenter,
    docker,
    exec: (argv, timeoutMs = 30_000) =>
      execFileAsync('nsenter', [...nsenter, ...argv], { timeout: timeoutMs }),
    async restart(options = {}) {
      await kill(dockerd, options.crash ? 0 : 20_000);
      if (options.args) extraArgs = options.args;
      await startDaemon();
    },
    log: dockerLog,
    async stop() {
      // dockerd stops its containers; then containerd, then the holder.
      await kill(dockerd);
      await kill(containerd);
      await kill(holder, 0);
      if (options.netns) await execFileAsync('umount', ['--recursive', '--lazy', netnsDir]);
      else deleteNetns(name);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await waitFor(async () => existsSync(ready) || holder.exitCode !== null, 10_000, 'the namespaces');
    if (holder.exitCode !== null) throw new Error(`namespace holder exited (${holder.exitCode})`);
    containerd = inside(['containerd', '--config', `${dir}/ctd/config.toml`], 'containerd.log');
    await startDaemon();
    await importBusybox(dir, docker);
  } catch (err) {
    const log = dockerLog();
    await self.stop();
    throw new Error(`${(err as Error).message}\n${log}`);
  }
  return self;
}
