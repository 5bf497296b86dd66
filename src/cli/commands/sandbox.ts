/** `netctl sandbox create|ls|inspect|rm|exec`: network namespaces as containers without images. */
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { type CreateSandboxRequest, createSandboxSchema } from '../../core/schemas.js';
import { describeIssues, parseRequest } from '../../core/validate.js';
import { Errors } from '../../errors.js';
import { type Cli, verb } from '../cli.js';
import { netctlExecArgs, runForeground } from '../exec.js';
import * as flags from '../flags.js';
import { inspectVerb, listVerb, removeVerb } from '../verbs.js';

export function hostname(value: string): string {
  const result = createSandboxSchema.shape.hostname.safeParse(value, { reportInput: true });
  if (!result.success) throw new InvalidArgumentError(describeIssues(result.error.issues));
  return value;
}

export function netnsPath(value: string): string {
  if (!value.startsWith('/'))
    throw new InvalidArgumentError(`${JSON.stringify(value)} is not an absolute path`);
  return value;
}

export function sandboxCommand(cli: Cli, program: Command): Command {
  const sandbox = program.command('sandbox').description('manage sandboxes (network namespaces)');
  createVerb(cli, sandbox);
  listVerb(cli, sandbox, {
    description: 'list sandboxes',
    list: (api) => api.listSandboxes(),
    headers: ['SANDBOX ID', 'NAME', 'HOSTNAME', 'NETNS', 'ENDPOINTS', 'PID'],
    row: (s) => [s.name, s.hostname, s.key, String(s.endpointIds.length), s.pid ? String(s.pid) : ''],
  });
  inspectVerb(cli, sandbox, {
    description: 'show sandboxes in detail, with their endpoints (JSON)',
    what: 'sandbox',
    inspect: (api, ref) => api.inspectSandbox(ref),
    show: (d) => ({ ...d.sandbox, endpoints: d.endpoints }),
  });
  removeVerb(cli, sandbox, {
    description: 'remove sandboxes (they leave their networks; a process run in one is stopped)',
    what: 'sandbox',
    remove: (api, ref) => api.deleteSandbox(ref),
  });
  execVerb(cli, sandbox);
  return sandbox;
}

interface SandboxCreateFlags {
  hostname?: string;
  netns?: string;
  label?: [string, string][];
}

function createVerb(cli: Cli, sandbox: Command): Command {
  return verb(sandbox, 'create')
    .description('create a sandbox and print its id')
    .argument('<name>', 'sandbox name', flags.name)
    .option('--hostname <name>', 'hostname inside the sandbox', hostname)
    .option(
      '--netns <path>',
      'use this existing netns (e.g. /proc/PID/ns/net) instead of making one',
      netnsPath,
    )
    .option('--label <key=value>', 'label (repeatable)', flags.repeatable(flags.keyValue(true)))
    .action(async (name: string, options: SandboxCreateFlags, command: Command) => {
      const request: CreateSandboxRequest = {
        name,
        ...(options.hostname ? { hostname: options.hostname } : {}),
        ...(options.netns ? { key: options.netns } : {}),
        labels: flags.toRecord(options.label),
      };
      parseRequest(createSandboxSchema, request);
      const created = await cli.withApi(command, (api) => api.createSandbox(request));
      cli.out.line(created.id);
    });
}

function execVerb(cli: Cli, sandbox: Command): Command {
  return verb(sandbox, 'exec')
    .description('run a command in a sandbox and exit with its status')
    .argument('<sandbox>', 'sandbox name or id')
    .argument(
      '<command...>',
      'the command and its arguments, passed through as given (netctl options go before it)',
    )
    .passThroughOptions()
    .action(async (ref: string, commandLine: string[], _options: unknown, command: Command) => {
      // Options stop at the sandbox name, so a `--` after it reaches us: it only separates.
      if (commandLine[0] === '--') commandLine = commandLine.slice(1);
      if (!commandLine.length) throw new Errors.InvalidRequest('no command given after --');
      const details = await cli.withApi(command, (api) => api.inspectSandbox(ref));
      cli.status = await runForeground(cli.ctx, netctlExecArgs(details.sandbox, commandLine));
    });
}
