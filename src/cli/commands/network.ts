/** `netctl network create|ls|inspect|rm|prune|connect|disconnect`: docker network's verbs and flags. */
import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import { Errors } from '../../errors.js';
import { type Cli, verb } from '../cli.js';
import * as flags from '../flags.js';
import { dockerNetworkInspect } from '../inspect.js';
import {
  type ConnectFlags,
  connectRequest,
  type NetworkCreateFlags,
  networkCreateRequest,
} from '../requests.js';
import { inspectVerb, listVerb, removeVerb } from '../verbs.js';

async function confirm(cli: Cli, question: string): Promise<boolean> {
  const rl = createInterface({ input: cli.ctx.stdin, output: cli.ctx.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}

export function networkCommand(cli: Cli, program: Command): Command {
  const network = program.command('network').description('manage networks');
  createVerb(cli, network);
  listVerb(cli, network, {
    description: 'list networks',
    list: (api) => api.listNetworks(),
    headers: ['NETWORK ID', 'NAME', 'DRIVER', 'SCOPE', 'SUBNET'],
    row: (n) => [n.name, n.driver, n.scope, n.ipam.config.map((c) => c.subnet).join('\n')],
  });
  inspectVerb(cli, network, {
    description: 'show networks in detail, as docker network inspect does (JSON)',
    what: 'network',
    inspect: (api, ref) => api.inspectNetwork(ref),
    show: dockerNetworkInspect,
  });
  removeVerb(cli, network, {
    description: 'remove networks',
    what: 'network',
    remove: (api, ref) => api.deleteNetwork(ref),
  });
  pruneVerb(cli, network);
  connectVerb(cli, network);
  disconnectVerb(cli, network);
  return network;
}

function createVerb(cli: Cli, network: Command): Command {
  return verb(network, 'create')
    .description('create a network and print its id')
    .argument('<name>', 'network name', flags.name)
    .option('-d, --driver <driver>', 'network driver', flags.driver, 'bridge')
    .option('--subnet <cidr>', 'subnet (repeatable)', flags.repeatable(flags.cidr))
    .option(
      '--gateway <ip>',
      'gateway, in the --subnet that contains it (repeatable)',
      flags.repeatable(flags.ip),
    )
    .option(
      '--ip-range <cidr>',
      'allocate from this part of its --subnet (repeatable)',
      flags.repeatable(flags.cidr),
    )
    .option(
      '--aux-address <name=ip>',
      'address to keep out of allocation (repeatable)',
      flags.repeatable(flags.auxAddress),
    )
    .option('--ipv6', 'enable IPv6')
    .option('--internal', 'no way out of the network')
    .option('-o, --opt <key=value>', 'driver option (repeatable)', flags.repeatable(flags.keyValue(false)))
    .option('--label <key=value>', 'label (repeatable)', flags.repeatable(flags.keyValue(true)))
    .action(async (name: string, options: NetworkCreateFlags, command: Command) => {
      const request = networkCreateRequest(name, options);
      const created = await cli.withApi(command, (api) => api.createNetwork(request));
      cli.out.line(created.id);
    });
}

function pruneVerb(cli: Cli, network: Command): Command {
  return verb(network, 'prune')
    .description('remove every network without endpoints')
    .option('-f, --force', 'do not ask for confirmation')
    .action(async (options: { force?: boolean }, command: Command) => {
      if (!options.force) {
        if (!cli.ctx.interactive) throw new Errors.ConfirmationRequired('network prune');
        const yes = await confirm(
          cli,
          'WARNING! This will remove all networks not used by at least one sandbox.\nAre you sure you want to continue? [y/N] ',
        );
        if (!yes) return;
      }
      const removed = await cli.withApi(command, (api) => api.pruneNetworks());
      if (removed.length) cli.out.line(`Deleted Networks:\n${removed.join('\n')}`);
    });
}

function connectVerb(cli: Cli, network: Command): Command {
  return verb(network, 'connect')
    .description('connect a sandbox to a network')
    .argument('<network>', 'network name or id')
    .argument('<sandbox>', 'sandbox name or id')
    .option('--ip <address>', 'IPv4 address', flags.ipv4)
    .option('--ip6 <address>', 'IPv6 address', flags.ipv6)
    .option('--alias <name>', 'network-scoped alias (repeatable)', flags.repeatable(flags.name))
    .option(
      '-p, --publish <[ip:]hostPort:containerPort[/proto]>',
      'publish a port or range (repeatable)',
      flags.repeatable(flags.publish),
    )
    .action(async (networkRef: string, sandboxRef: string, options: ConnectFlags, command: Command) => {
      const request = connectRequest(networkRef, sandboxRef, options);
      await cli.withApi(command, (api) => api.connect(request));
    });
}

function disconnectVerb(cli: Cli, network: Command): Command {
  return verb(network, 'disconnect')
    .description('disconnect a sandbox from a network')
    .argument('<network>', 'network name or id')
    .argument('<sandbox>', 'sandbox name or id')
    .action(async (networkRef: string, sandboxRef: string, _options: unknown, command: Command) => {
      await cli.withApi(command, (api) => api.disconnect(networkRef, sandboxRef));
    });
}
