/**
 * Per-sandbox /etc files (resolv.conf, hosts, hostname), kept under
 * /run/netctl/sandboxes/<id>/etc and mounted over /etc by netctl-exec for
 * processes run in the sandbox — the way `ip netns exec` uses /etc/netns/NAME.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sandboxEtcDir, sandboxRunDir } from '../paths.js';

export interface HostEntry {
  ip: string;
  names: string[];
}

/**
 * The host's resolv.conf without loopback nameservers, which mean nothing
 * inside a sandbox (Docker filters them the same way, libnetwork/resolvconf).
 */
export function sandboxResolvConf(hostResolvConf: string): string {
  const lines = hostResolvConf.split('\n').filter((line) => {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    return !m || !(m[1]?.startsWith('127.') || m[1] === '::1');
  });
  return `${lines.join('\n').trim()}\n`;
}

export function hostsFile(hostname: string, entries: HostEntry[]): string {
  const lines = [
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    `127.0.1.1\t${hostname}`,
  ];
  for (const e of entries) lines.push(`${e.ip}\t${e.names.join(' ')}`);
  return `${lines.join('\n')}\n`;
}

export function writeSandboxEtc(sandboxId: string, hostname: string, entries: HostEntry[]): string {
  const dir = sandboxEtcDir(sandboxId);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  let resolv = '';
  try {
    resolv = readFileSync('/etc/resolv.conf', 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  writeFileSync(join(dir, 'resolv.conf'), sandboxResolvConf(resolv));
  writeFileSync(join(dir, 'hosts'), hostsFile(hostname, entries));
  writeFileSync(join(dir, 'hostname'), `${hostname}\n`);
  return dir;
}

/**
 * Rewrite only the hosts file of a sandbox (peers came or went; resolv.conf
 * and hostname stay). Written in place, not renamed over: a running process
 * has this very file bind-mounted. False when the sandbox has no /etc files
 * (a reboot emptied /run, or it is being removed): nothing uses them then.
 */
export function writeSandboxHosts(sandboxId: string, hostname: string, entries: HostEntry[]): boolean {
  try {
    writeFileSync(join(sandboxEtcDir(sandboxId), 'hosts'), hostsFile(hostname, entries));
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

export function removeSandboxEtc(sandboxId: string): void {
  rmSync(sandboxRunDir(sandboxId), { recursive: true, force: true });
}
