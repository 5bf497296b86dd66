/** `netctl host ls`: the daemons on the shared store (docs/overlay.md). */
import type { Command } from 'commander';
import type { Cli } from '../cli.js';
import { listVerb } from '../verbs.js';

export function hostCommand(cli: Cli, program: Command): Command {
  const host = program.command('host').description('hosts of the cluster (daemons on one shared store)');
  listVerb(cli, host, {
    description:
      'list the hosts on the shared store: up while their lease is renewed, down while peers of theirs remain',
    list: async (api) => (await api.listHosts()).map((h) => ({ ...h, name: h.hostname ?? '' })),
    headers: ['HOST ID', 'HOSTNAME', 'ADDRESS', 'STATE', 'PEERS', 'VERSION', ''],
    row: (h) => [
      h.name,
      h.address ?? '',
      h.state,
      String(h.peers),
      h.version ?? '',
      h.self ? '(this host)' : '',
    ],
  });
  return host;
}
