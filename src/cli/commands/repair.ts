/**
 * `netctl repair [NETWORK]`: put back what a network's kernel side is
 * missing — its bridge, its rules, its endpoints' veths on the bridge, their
 * published ports — as gc's restore step does, without the rest of gc. What
 * a CNI CHECK (or STATUS) reports missing of a network, this restores.
 */
import type { Command } from 'commander';
import { type Cli, formatOption, verb } from '../cli.js';
import { EXIT_FAILURE } from '../exit.js';
import type { Format } from '../output.js';
import { withFailure } from './misc.js';

export function repairCommand(cli: Cli, program: Command): Command {
  return verb(program, 'repair')
    .description("restore a network's missing bridge, rules and ports (every network's without a name)")
    .argument('[network]', 'network name or id')
    .addOption(formatOption())
    .action(async (network: string | undefined, options: { format: Format }, command: Command) => {
      const actions = await cli.withApi(command, (api) => api.repair(network));
      if (actions.some((a) => a.failed !== undefined)) cli.status = EXIT_FAILURE;
      if (options.format === 'json') {
        cli.out.json(actions);
        return;
      }
      if (!actions.length) {
        cli.out.line(network ? `Network ${network} is complete: nothing to repair.` : 'Nothing to repair.');
        return;
      }
      cli.out.table(
        ['NETWORK', 'ACTION', 'REASON'],
        actions.map((a) => [a.name, a.action, withFailure(a)]),
      );
    });
}
