/**
 * A real Controller (LMDB in a temp dir, IPAM, iptables, bridge driver)
 * whose "host" is the test run's private namespace, plus an "external"
 * netns wired to it (192.0.2.1 here, 192.0.2.2 there) standing for the
 * world outside, and helpers to run commands inside sandboxes.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { NETCTL_EXEC } from '../../../src/cli/context.js';
import { netctlExecArgs } from '../../../src/cli/exec.js';
import type { Controller } from '../../../src/controller/controller.js';
import type { Sandbox } from '../../../src/core/model.js';
import { createLocalApi } from '../../../src/daemon/compose.js';
import { addrAdd, linkAdd, linkDel, linkSetUp, Netlink } from '../../../src/kernel/index.js';
import { testNetns } from '../harness.js';

const execFileAsync = promisify(execFile);

export interface World {
  api: Controller;
  ext: { path: string };
  close(): Promise<void>;
}

export async function world(): Promise<World> {
  const dir = mkdtempSync(join(tmpdir(), 'netctl-ctl-'));
  const local = await createLocalApi({ kv: `lmdb://${join(dir, 'state.lmdb')}` });
  const ext = testNetns('ext');
  const host = Netlink.open();
  await linkAdd(host, { kind: 'veth', name: 'ext0', up: true, peer: { name: 'eth0', netns: ext.path } });
  await addrAdd(host, 'ext0', '192.0.2.1/24');
  await addrAdd(ext.nl, 'eth0', '192.0.2.2/24');
  await linkSetUp(ext.nl, 'eth0');
  return {
    api: local.api,
    ext,
    async close() {
      await linkDel(host, 'ext0');
      host.close();
      await local.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Run argv inside the sandbox (with its /etc files), as `netctl sandbox exec` does. */
export async function inSandbox(sandbox: Sandbox, argv: string[], timeoutMs = 5000) {
  const args = netctlExecArgs(sandbox, argv);
  try {
    const { stdout } = await execFileAsync(NETCTL_EXEC, args, { timeout: timeoutMs });
    return { ok: true, stdout };
  } catch (err) {
    return { ok: false, stdout: String((err as { stdout?: string }).stdout ?? '') };
  }
}

/** Start argv in the sandbox in the background; stop() kills it by its PID. */
export function startInSandbox(sandbox: Sandbox, argv: string[]): { stop(): Promise<void> } {
  const args = netctlExecArgs(sandbox, argv);
  const child = spawn(NETCTL_EXEC, args, { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    async stop() {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** A one-shot TCP server in netns that answers every connection with the peer's address. */
export function echoPeerServer(netnsPath: string, port: number): { stop(): void } {
  const child = spawn(
    'nsenter',
    [
      `--net=${netnsPath}`,
      '--',
      process.execPath,
      '-e',
      `require('net').createServer((s) => s.end(s.remoteAddress + '\\n')).listen(${port}, '0.0.0.0')`,
    ],
    { stdio: 'ignore' },
  );
  // Wait until it listens: nsenter + node start in ~150 ms.
  for (let i = 0; i < 50; i++) {
    const out = execFileSync('nsenter', [`--net=${netnsPath}`, '--', 'ss', '-Hltn', `sport = :${port}`], {
      encoding: 'utf8',
    });
    if (out.trim()) break;
    execFileSync('sleep', ['0.05']);
  }
  return { stop: () => child.kill('SIGKILL') };
}

/**
 * GET url with Node's fetch, from inside netns (or here), returning the body
 * or undefined. Not busybox wget: 1.35's segfaults now and then.
 */
export const httpGetArgv = (url: string) => [
  process.execPath,
  '-e',
  `fetch(${JSON.stringify(url)}, { signal: AbortSignal.timeout(2000) }).then((r) => r.text()).then((t) => process.stdout.write(t), () => process.exit(1))`,
];

export async function fetchFrom(netnsPath: string | undefined, url: string): Promise<string | undefined> {
  const argv = httpGetArgv(url);
  const [file, args] = netnsPath
    ? ['nsenter', [`--net=${netnsPath}`, '--', ...argv]]
    : [argv[0] as string, argv.slice(1)];
  try {
    return (await execFileAsync(file, args, { timeout: 5000 })).stdout;
  } catch {
    return undefined;
  }
}
