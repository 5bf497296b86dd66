/**
 * `netctl run`: `docker run` without an image. Makes a sandbox, connects it
 * to each --network, runs the command in it. Whatever run made is removed
 * again if a later step fails (undo close to the step).
 */
import { join } from 'node:path';
import type { Command } from 'commander';
import type { NetctlApi } from '../../controller/api.js';
import type { Sandbox } from '../../core/model.js';
import type { ConnectRequest, CreateSandboxRequest } from '../../core/schemas.js';
import { createSandboxSchema } from '../../core/schemas.js';
import { parseRequest } from '../../core/validate.js';
import { Errors, isCode } from '../../errors.js';
import { log } from '../../log.js';
import { type Cli, verb } from '../cli.js';
import { netctlExecArgs, runForeground, startDetached } from '../exec.js';
import * as flags from '../flags.js';
import { generateName } from '../names.js';
import { connectRequest } from '../requests.js';
import { hostname } from './sandbox.js';

/** `--network none` (Docker's name for loopback only) connects nothing. */
export const NO_NETWORK = 'none';
/** `--network host`: run in the host's own network namespace. */
export const HOST_NETWORK = 'host';
const NAME_ATTEMPTS = 5;

interface RunFlags {
  name?: string;
  network?: string[];
  ip?: string;
  ip6?: string;
  publish?: ReturnType<typeof flags.publish>[];
  hostname?: string;
  label?: [string, string][];
  detach?: boolean;
  rm?: boolean;
}

/** Every request run will make, checked before it makes anything. */
export function runPlan(
  options: RunFlags,
  name: string,
): { sandbox: CreateSandboxRequest; connects: ConnectRequest[] } {
  if (options.rm && options.detach)
    throw new Errors.InvalidOption(
      '--rm',
      'cannot be combined with --detach: nothing would wait for the command',
    );
  const requested = options.network ?? [];
  // host and container:NAME share a namespace instead of making one (Docker's modes).
  const sharing = requested.find((n) => n === HOST_NETWORK || n.startsWith('container:'));
  if (sharing && requested.length > 1)
    throw new Errors.InvalidOption('--network', `${sharing} cannot be combined with other networks`);
  if (sharing && options.hostname)
    throw new Errors.InvalidOption('--hostname', `cannot be set with --network ${sharing}`);
  const networks = sharing ? [] : requested.filter((n) => n !== NO_NETWORK);
  if (networks.length && networks.length !== requested.length)
    throw new Errors.InvalidOption('--network', `${NO_NETWORK} cannot be combined with other networks`);
  for (const [flag, given] of [
    ['--ip', options.ip],
    ['--ip6', options.ip6],
    ['--publish', options.publish?.length],
  ] as const)
    if (given && !networks.length) throw new Errors.InvalidOption(flag, 'needs a --network to apply to');
  const sandbox: CreateSandboxRequest = {
    name,
    ...(options.hostname ? { hostname: options.hostname } : {}),
    ...(sharing ? { netnsOf: sharing } : {}),
    labels: flags.toRecord(options.label),
  };
  parseRequest(createSandboxSchema, sandbox);
  // --ip, --ip6 and -p apply to the first network, as in `docker run`.
  const connects = networks.map((network, i) => connectRequest(network, name, i === 0 ? options : {}));
  return { sandbox, connects };
}

async function createNamedSandbox(
  api: NetctlApi,
  options: RunFlags,
): Promise<{ sandbox: Sandbox; connects: ConnectRequest[] }> {
  for (let attempt = 0; ; attempt++) {
    const name = options.name ?? generateName(attempt);
    const plan = runPlan(options, name);
    try {
      const sandbox = await api.createSandbox(plan.sandbox);
      return { sandbox, connects: plan.connects.map((c) => ({ ...c, sandbox: sandbox.id })) };
    } catch (err) {
      const clash = isCode(err, Errors.SandboxExists);
      if (!clash || options.name !== undefined || attempt + 1 >= NAME_ATTEMPTS) throw err;
    }
  }
}

/** Undo: leave the networks joined (last first), then remove the sandbox. */
async function removeSandbox(cli: Cli, api: NetctlApi, sandbox: Sandbox, joined: string[]): Promise<void> {
  for (const network of [...joined].reverse()) {
    try {
      await api.disconnect(network, sandbox.id);
    } catch (err) {
      log.warn({ err, network, sandbox: sandbox.name }, 'run: cleanup disconnect failed');
      cli.ctx.stderr.write(`netctl: cleanup: ${(err as Error).message}\n`);
    }
  }
  await api.deleteSandbox(sandbox.id);
}

export function runCommand(cli: Cli, program: Command): Command {
  return verb(program, 'run')
    .description('run a command in a new sandbox, connected to the given networks')
    .argument(
      '<command...>',
      'the command and its arguments, passed through as given (netctl options go before it)',
    )
    .option('--name <name>', 'sandbox name (default: a generated one)', flags.name)
    .option(
      '--network <network>',
      'connect to this network (repeatable; default none: loopback only; host or container:NAME to share a namespace)',
      flags.repeatable((v) =>
        v.startsWith('container:') ? `container:${flags.name(v.slice(10))}` : flags.name(v),
      ),
    )
    .option('--ip <address>', 'IPv4 address on the first network', flags.ipv4)
    .option('--ip6 <address>', 'IPv6 address on the first network', flags.ipv6)
    .option(
      '-p, --publish <[ip:]hostPort:containerPort[/proto]>',
      'publish a port on the first network (repeatable)',
      flags.repeatable(flags.publish),
    )
    .option('--hostname <name>', 'hostname inside the sandbox', hostname)
    .option('--label <key=value>', 'sandbox label (repeatable)', flags.repeatable(flags.keyValue(true)))
    .option('-d, --detach', 'run in the background: print the sandbox name, log to its run directory')
    .option('--rm', 'remove the sandbox when the command exits')
    .passThroughOptions()
    .action(async (commandLine: string[], options: RunFlags, command: Command) => {
      // Fails on bad input before anything is made (the name is only a stand-in here).
      runPlan(options, options.name ?? 'check');
      await cli.withApi(command, async (api) => {
        const { sandbox, connects } = await createNamedSandbox(api, options);
        const joined: string[] = [];
        let status: number;
        try {
          for (const request of connects) {
            await api.connect(request);
            joined.push(request.network);
          }
          const args = netctlExecArgs(sandbox, commandLine);
          if (options.detach) {
            const pid = await startDetached(cli.ctx, args, join(cli.ctx.sandboxDir(sandbox.id), 'log'));
            try {
              await api.setSandboxPid(sandbox.id, pid);
            } catch (err) {
              // Unrecorded, nothing would ever stop it. ESRCH: it has already exited.
              try {
                process.kill(pid, 'SIGTERM');
              } catch (killErr) {
                if ((killErr as NodeJS.ErrnoException).code !== 'ESRCH') throw killErr;
              }
              throw err;
            }
            cli.out.line(sandbox.name);
            return;
          }
          status = await runForeground(cli.ctx, args);
        } catch (err) {
          await removeSandbox(cli, api, sandbox, joined).catch((cleanupErr: unknown) => {
            log.warn({ err: cleanupErr, sandbox: sandbox.name }, 'run: cleanup failed');
            cli.ctx.stderr.write(`netctl: cleanup: ${(cleanupErr as Error).message}\n`);
          });
          throw err;
        }
        // Like `docker run`: the sandbox stays after the command unless --rm.
        if (options.rm) await removeSandbox(cli, api, sandbox, joined);
        cli.status = status;
      });
    });
}
