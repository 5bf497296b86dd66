/**
 * `netctl doctor`: can this machine run netctl? Every probe that creates
 * something does it in a throwaway anonymous namespace, so the doctor never
 * changes the host's network.
 */
import { execFileSync } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { release } from 'node:os';
import {
  createAnonymousNetns,
  linkAdd,
  linkDel,
  Netlink,
  type Netns,
  type NewLink,
  sysctlGet,
  withNetns,
} from '../kernel/index.js';

export type Status = 'ok' | 'warn' | 'fail';

export interface CheckResult {
  check: string;
  status: Status;
  detail: string;
}

// include/uapi/linux/capability.h
const CAP_NET_ADMIN = 12;
const CAP_SYS_ADMIN = 21;

function effectiveCaps(): bigint {
  const line = readFileSync('/proc/self/status', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('CapEff:'));
  return BigInt(`0x${line?.split(/\s+/)[1] ?? '0'}`);
}

function hasCap(caps: bigint, cap: number): boolean {
  return (caps & (1n << BigInt(cap))) !== 0n;
}

type Output = { ok: true; stdout: string } | { ok: false; error: string };

function commandOutput(file: string, args: string[], netns?: Netns): Output {
  const run = () =>
    execFileSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 5000 });
  try {
    // A child spawned while this thread is inside netns starts in netns.
    return { ok: true, stdout: (netns ? withNetns(netns, run) : run()).trim() };
  } catch (err) {
    const e = err as { code?: string; stderr?: string; message: string };
    return { ok: false, error: e.code === 'ENOENT' ? 'not found' : e.stderr?.trim() || e.message };
  }
}

function privileges(): CheckResult[] {
  const caps = effectiveCaps();
  const uid = process.getuid?.() ?? -1;
  return [
    {
      check: 'CAP_NET_ADMIN',
      status: hasCap(caps, CAP_NET_ADMIN) ? 'ok' : 'fail',
      detail: hasCap(caps, CAP_NET_ADMIN)
        ? `uid ${uid}`
        : 'needed to create links, addresses and rules: run as root',
    },
    {
      check: 'CAP_SYS_ADMIN',
      status: hasCap(caps, CAP_SYS_ADMIN) ? 'ok' : 'fail',
      detail: hasCap(caps, CAP_SYS_ADMIN)
        ? 'setns and netns mounts allowed'
        : 'needed to enter and pin namespaces',
    },
  ];
}

/** Create each link kind netctl uses inside a scratch namespace. */
async function linkKinds(scratch: Netns): Promise<CheckResult[]> {
  const nl = Netlink.open(scratch);
  const kinds: [string, NewLink, string][] = [
    ['veth', { kind: 'veth', name: 'doctor-v0', peer: { name: 'doctor-v1' } }, 'endpoints'],
    ['bridge', { kind: 'bridge', name: 'doctor-br' }, 'bridge networks'],
    ['vxlan', { kind: 'vxlan', name: 'doctor-vx', vni: 4242 }, 'overlay networks'],
  ];
  try {
    const results: CheckResult[] = [];
    for (const [kind, spec, usedFor] of kinds) {
      try {
        await linkAdd(nl, spec);
        await linkDel(nl, spec.name);
        results.push({ check: `link kind ${kind}`, status: 'ok', detail: `used for ${usedFor}` });
      } catch (err) {
        results.push({
          check: `link kind ${kind}`,
          status: 'fail',
          detail: `${(err as Error).message}; needed for ${usedFor} (is the ${kind} module available?)`,
        });
      }
    }
    return results;
  } finally {
    nl.close();
  }
}

function firewall(scratch: Netns): CheckResult[] {
  const results: CheckResult[] = [];
  const version = commandOutput('iptables', ['--version']);
  if (!version.ok) {
    results.push({
      check: 'iptables',
      status: 'fail',
      detail: `${version.error}: install the iptables package`,
    });
  } else {
    const backend = /\((nf_tables|legacy)\)/.exec(version.stdout)?.[1] ?? 'unknown';
    const nat = commandOutput('iptables-save', ['-t', 'nat'], scratch);
    results.push({
      check: 'iptables',
      status: nat.ok ? 'ok' : 'fail',
      detail: nat.ok ? `${version.stdout}; backend ${backend}` : `cannot read the nat table: ${nat.error}`,
    });
  }
  // The flag-less probe: --version is answered without touching any table.
  const restore = commandOutput('iptables-restore', ['--version']);
  results.push({
    check: 'iptables-restore',
    status: restore.ok ? 'ok' : 'fail',
    detail: restore.ok
      ? 'batches rule changes into one call'
      : `${restore.error}: install the iptables package`,
  });
  const nft = commandOutput('nft', ['--version']);
  results.push({
    check: 'nft',
    status: nft.ok ? 'ok' : 'warn',
    detail: nft.ok ? nft.stdout : `${nft.error}: only the iptables backend is available`,
  });
  return results;
}

function sysctls(): CheckResult[] {
  const forward = sysctlGet('net.ipv4.ip_forward');
  const bridgeNf = existsSync('/proc/sys/net/bridge/bridge-nf-call-iptables')
    ? sysctlGet('net/bridge/bridge-nf-call-iptables')
    : undefined;
  return [
    {
      check: 'net.ipv4.ip_forward',
      status: 'ok',
      detail:
        forward === '1'
          ? 'on'
          : 'off: netctl turns it on when it creates a network with a way out, as dockerd does',
    },
    {
      check: 'bridge-nf-call-iptables',
      status: 'ok',
      detail:
        bridgeNf === undefined
          ? 'br_netfilter not loaded: bridged traffic skips iptables (ICC rules use the bridge device instead)'
          : `br_netfilter loaded (${bridgeNf})`,
    },
  ];
}

function paths(): CheckResult[] {
  return ['/run', '/var/lib'].map((dir) => {
    try {
      accessSync(dir, constants.W_OK);
      return {
        check: `${dir} writable`,
        status: 'ok' as const,
        detail: 'netns pins, sockets and state live here',
      };
    } catch {
      return {
        check: `${dir} writable`,
        status: 'fail' as const,
        detail: 'netctl keeps netns pins, sockets and state here',
      };
    }
  });
}

export async function runDoctor(): Promise<CheckResult[]> {
  const results: CheckResult[] = [
    { check: 'node', status: 'ok', detail: process.version },
    { check: 'kernel', status: 'ok', detail: release() },
    ...privileges(),
  ];
  let scratch: Netns;
  try {
    scratch = createAnonymousNetns();
    results.push({
      check: 'network namespaces',
      status: 'ok',
      detail: 'created and removed a scratch namespace',
    });
  } catch (err) {
    results.push({ check: 'network namespaces', status: 'fail', detail: (err as Error).message });
    return [...results, ...sysctls(), ...paths()];
  }
  try {
    results.push(...(await linkKinds(scratch)));
    results.push(...firewall(scratch));
  } finally {
    scratch.close();
  }
  return [...results, ...sysctls(), ...paths()];
}
