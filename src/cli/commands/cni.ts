/**
 * `netctl cni install`: put netctl's CNI plugins where a runtime looks for
 * them (symlinks to the shim, which finds the rest of netctl through
 * /proc/self/exe: a copy would not), and write a conflist for a network.
 * Re-running it changes nothing; a different file in the way is kept
 * unless --force.
 */
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { conflistFileName, conflistFor } from '../../cni/conflist.js';
import { type CniVersion, isSupportedVersion, SUPPORTED_VERSIONS } from '../../cni/types.js';
import { Errors, isCode } from '../../errors.js';
import { type Cli, verb } from '../cli.js';
import * as flags from '../flags.js';

export const DEFAULT_BIN_DIR = '/opt/cni/bin';
export const DEFAULT_CONF_DIR = '/etc/cni/net.d';
/** The plugins, both the one shim: it is netctl-ipam when executed under that name. */
const PLUGINS = ['netctl-cni', 'netctl-ipam'];

interface InstallFlags {
  binDir: string;
  confDir: string;
  network?: string;
  subnet?: string;
  gateway?: string;
  cniVersion: CniVersion;
  priority: number;
  force?: boolean;
}

function priority(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 99) throw new InvalidArgumentError('a number from 0 to 99');
  return n;
}

function cniVersion(value: string): CniVersion {
  if (!isSupportedVersion(value)) throw new InvalidArgumentError(`one of ${SUPPORTED_VERSIONS.join(', ')}`);
  return value;
}

/** What is at path now: nothing, a symlink (to where), or something else. */
function existing(path: string): { kind: 'none' } | { kind: 'link'; target: string } | { kind: 'other' } {
  try {
    const stat = lstatSync(path);
    return stat.isSymbolicLink() ? { kind: 'link', target: readlinkSync(path) } : { kind: 'other' };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'none' };
    throw err;
  }
}

export function cniCommand(cli: Cli, program: Command): Command {
  const cni = program.command('cni').description('CNI plugins for podman, containerd and kubelets');
  installVerb(cli, cni);
  return cni;
}

function installVerb(cli: Cli, cni: Command): Command {
  return verb(cni, 'install')
    .description(
      'link netctl-cni and netctl-ipam into the CNI plugin dir; with --network, write its conflist',
    )
    .option('--bin-dir <dir>', 'CNI plugin directory', DEFAULT_BIN_DIR)
    .option('--conf-dir <dir>', 'CNI network configuration directory', DEFAULT_CONF_DIR)
    .option('--network <name>', 'write a conflist for this netctl network', flags.name)
    .option('--subnet <cidr>', 'create the network with this subnet if it does not exist', flags.cidr)
    .option('--gateway <ip>', 'its gateway (with --subnet)', flags.ip)
    .option('--cni-version <version>', 'cniVersion of the conflist', cniVersion, '1.0.0')
    .option(
      '--priority <n>',
      'conflist file name prefix (runtimes read the directory in order)',
      priority,
      50,
    )
    .option('-f, --force', 'replace files that are in the way')
    .action(async (options: InstallFlags, command: Command) => {
      if ((options.subnet || options.gateway) && !options.network)
        throw new Errors.InvalidRequest('--subnet and --gateway need --network');
      if (options.gateway && !options.subnet) throw new Errors.InvalidRequest('--gateway needs --subnet');
      const shim = cli.ctx.netctlCni;
      if (!existsSync(shim)) throw new Errors.Internal(`${shim} is not built: run \`npm run build\``);
      // The network first: nothing is written for a network that cannot be had.
      if (options.network) await ensureNetwork(cli, command, options.network, options);
      linkPlugins(cli, shim, options);
      if (options.network) writeConflist(cli, options.network, options);
    });
}

/** Network name, made with --subnet (and --gateway) when it does not exist. */
async function ensureNetwork(cli: Cli, command: Command, name: string, options: InstallFlags): Promise<void> {
  await cli.withApi(command, async (api) => {
    try {
      await api.inspectNetwork(name);
    } catch (err) {
      if (!isCode(err, Errors.NetworkNotFound) || !options.subnet) throw err;
      const subnet = {
        subnet: options.subnet,
        ...(options.gateway ? { gateway: options.gateway } : {}),
      };
      await api.createNetwork({
        name,
        ipam: { config: [subnet] },
        labels: { 'netctl.cni.config': name },
      });
      cli.out.line(`created network ${name} (${options.subnet})`);
    }
  });
}

/** Each plugin a symlink to the shim in --bin-dir; another file there only with --force. */
function linkPlugins(cli: Cli, shim: string, options: InstallFlags): void {
  mkdirSync(options.binDir, { recursive: true });
  for (const plugin of PLUGINS) {
    const path = join(options.binDir, plugin);
    const now = existing(path);
    if (now.kind === 'link' && now.target === shim) {
      cli.out.line(`${path} -> ${shim} (unchanged)`);
      continue;
    }
    if (now.kind !== 'none' && !options.force)
      throw new Errors.InvalidRequest(`${path} exists and is not netctl's: pass --force to replace it`);
    // Made beside it and renamed over it: a runtime never finds the name missing.
    const temp = `${path}.netctl-${process.pid}`;
    symlinkSync(shim, temp);
    renameSync(temp, path);
    cli.out.line(`${path} -> ${shim}`);
  }
}

/** The network's conflist in --conf-dir; another one of that name only with --force. */
function writeConflist(cli: Cli, network: string, options: InstallFlags): void {
  mkdirSync(options.confDir, { recursive: true });
  const file = join(options.confDir, conflistFileName(network, options.priority));
  const text = `${JSON.stringify(conflistFor(network, options.cniVersion), null, 2)}\n`;
  if (existsSync(file)) {
    if (readFileSync(file, 'utf8') === text) {
      cli.out.line(`${file} (unchanged)`);
      return;
    }
    if (!options.force)
      throw new Errors.InvalidRequest(`${file} exists with other contents: pass --force to replace it`);
  }
  const temp = `${file}.netctl-${process.pid}`;
  writeFileSync(temp, text, { mode: 0o644 });
  renameSync(temp, file);
  cli.out.line(`wrote ${file}`);
}
