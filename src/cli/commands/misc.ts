/** `netctl gc`, `netctl doctor` and `netctl daemon` (src/daemon/daemon.ts). */
import { type Command, InvalidArgumentError } from 'commander';
import type { GcAction } from '../../controller/api.js';
import { DEFAULT_CLUSTER } from '../../daemon/cluster-flags.js';
import { log } from '../../log.js';
import { DEFAULT_API_SOCKET, DEFAULT_DOCKER_PLUGIN_DIR } from '../../server/listen.js';
import { type Cli, formatOption, verb } from '../cli.js';
import { EXIT_FAILURE, EXIT_OK } from '../exit.js';
import { ipv4, positiveInt } from '../flags.js';
import type { Format } from '../output.js';

export function gcCommand(cli: Cli, program: Command): Command {
  return verb(program, 'gc')
    .description(
      'make the kernel, the IPAM and the records agree: remove leftovers, finish or undo interrupted work',
    )
    .option('--dry-run', 'only report what would be done')
    .addOption(formatOption())
    .action(async (options: { dryRun?: boolean; format: Format }, command: Command) => {
      const report = await cli.withApi(command, (api) => api.gc({ dryRun: options.dryRun ?? false }));
      // An action that failed is reported with the rest, and the status says so.
      if (report.actions.some((a) => a.failed !== undefined)) cli.status = EXIT_FAILURE;
      if (options.format === 'json') {
        cli.out.json(report);
        return;
      }
      if (!report.actions.length) {
        cli.out.line('Nothing to clean up.');
        return;
      }
      cli.out.table(
        ['KIND', 'NAME', 'OWNER', 'ACTION', 'REASON'],
        report.actions.map((a) => [a.kind, a.name, a.owner, a.action, withFailure(a)]),
      );
      if (report.dryRun) cli.out.line('Dry run: nothing was changed.');
    });
}

/** An action's reason, and why it failed when it did. */
export function withFailure(action: GcAction): string {
  return action.failed === undefined ? action.reason : `${action.reason} (FAILED: ${action.failed})`;
}

export function doctorCommand(cli: Cli, program: Command): Command {
  return verb(program, 'doctor')
    .description('check that this machine can run netctl (kernel features, privileges, firewall tools)')
    .addOption(formatOption())
    .action(async (options: { format: Format }) => {
      // Loaded here: it brings the kernel layer and the native addon, which no other verb needs.
      const { runDoctor } = await import('../../daemon/doctor.js');
      const results = await runDoctor();
      if (options.format === 'json') cli.out.json(results);
      else
        cli.out.table(
          ['check', 'status', 'detail'],
          results.map((r) => [r.check, cli.out.status(r.status), r.detail]),
        );
      const failed = results.filter((r) => r.status === 'fail');
      if (options.format === 'table') {
        cli.out.line(
          failed.length
            ? `${failed.length} check(s) failed: netctl cannot work here until they pass.`
            : 'netctl can run here.',
        );
      }
      cli.status = failed.length ? EXIT_FAILURE : EXIT_OK;
    });
}

/**
 * `netctl daemon`: reconcile, then serve the REST API on a unix socket, and
 * the Docker plugins on theirs (docs/docker.md), until SIGTERM/SIGINT.
 * Networks stay in place when it stops; the next start picks them up (and
 * repairs what changed meanwhile).
 */
export function daemonCommand(cli: Cli, program: Command): Command {
  return verb(program, 'daemon')
    .description('run the netctl daemon (REST API socket, Docker plugin sockets); reconciles state at start')
    .option(
      '--docker-plugins <dir>',
      "Docker's plugin directory: serve the netctl-bridge network driver and the netctl IPAM driver there",
      DEFAULT_DOCKER_PLUGIN_DIR,
    )
    .option('--no-docker-plugins', 'serve no Docker plugin')
    .option(
      '--advertise-addr <ip>',
      "on a shared store: this host's underlay address, other hosts' VXLAN peer (default: the default route's source address)",
      ipv4,
    )
    .option(
      '--host-ttl <ms>',
      "on a shared store: this host's lease; it is gone this long after its last renewal",
      positiveInt,
      DEFAULT_CLUSTER.hostTtlMs,
    )
    .option(
      '--host-renew <ms>',
      'on a shared store: how often the lease is renewed',
      positiveInt,
      DEFAULT_CLUSTER.hostRenewMs,
    )
    .option(
      '--host-reap-after <ms>',
      "on a shared store: a host gone this long loses its endpoints' records and addresses",
      positiveInt,
      DEFAULT_CLUSTER.reapAfterMs,
    )
    .action(
      async (
        options: {
          dockerPlugins: string | false;
          advertiseAddr?: string;
          hostTtl: number;
          hostRenew: number;
          hostReapAfter: number;
        },
        command: Command,
      ) => {
        const g = cli.globals(command);
        if (!g.logLevel && !process.env.NETCTL_LOG_LEVEL) log.level = 'info';
        const socket = g.socket ?? process.env.NETCTL_SOCKET ?? DEFAULT_API_SOCKET;
        if (options.hostRenew >= options.hostTtl)
          throw new InvalidArgumentError('--host-renew must be shorter than --host-ttl');
        const { runDaemon } = await import('../../daemon/daemon.js');
        await runDaemon({
          socket,
          kv: g.kv,
          dockerPlugins: options.dockerPlugins,
          cluster: {
            ...DEFAULT_CLUSTER,
            advertiseAddr: options.advertiseAddr,
            hostTtlMs: options.hostTtl,
            hostRenewMs: options.hostRenew,
            reapAfterMs: options.hostReapAfter,
          },
        });
      },
    );
}
