/** What every command shares: output, the api, exit status, the global options. */
import type { Command } from 'commander';
import { InvalidArgumentError, Option } from 'commander';
import type { NetctlApi } from '../controller/api.js';
import { log } from '../log.js';
import { MAX_TIMEOUT_SECONDS, parseSeconds } from './backend.js';
import type { CliContext } from './context.js';
import { EXIT_OK, reportError } from './exit.js';
import { FORMATS, Output } from './output.js';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export interface GlobalOptions {
  socket?: string;
  kv?: string;
  timeout?: number;
  logLevel?: (typeof LOG_LEVELS)[number];
}

function seconds(value: string): number {
  const parsed = parseSeconds(value);
  if (parsed === undefined)
    throw new InvalidArgumentError(
      `want seconds, more than 0 and at most ${MAX_TIMEOUT_SECONDS} (e.g. 60 or 0.5)`,
    );
  return parsed;
}

/** --socket, --kv, --timeout and --log-level: on the program, and (hidden) on every verb, so they work on either side of it. */
export function globalOptions(hidden: boolean): Option[] {
  const options = [
    new Option('--socket <path>', 'daemon API socket (default: $NETCTL_SOCKET or /run/netctl/api.sock)'),
    new Option('--kv <url>', 'state store for in-process mode, e.g. redis://host:6379/0 (default: embedded)'),
    new Option(
      '--timeout <seconds>',
      'how long to wait for the daemon to answer each request (default: $NETCTL_TIMEOUT or 60)',
    ).argParser(seconds),
    new Option('--log-level <level>', 'log level (logs go to stderr)').choices(LOG_LEVELS),
  ];
  if (hidden) for (const option of options) option.hideHelp();
  return options;
}

/** A verb under parent, inheriting its settings (output, exit override), with the hidden global options. */
export function verb(parent: Command, name: string): Command {
  const command = parent.command(name);
  for (const option of globalOptions(true)) command.addOption(option);
  return command;
}

export const formatOption = () =>
  new Option('--format <format>', 'output format').choices(FORMATS).default('table');

export class Cli {
  readonly out: Output;
  /** The first failure's exit status, or 0. */
  status = EXIT_OK;

  constructor(readonly ctx: CliContext) {
    this.out = new Output(ctx.stdout, ctx.color);
  }

  /** The global options, the verb's own copy winning over the program's. */
  globals(command: Command): GlobalOptions {
    const chain: Command[] = [];
    for (let c: Command | null = command; c; c = c.parent) chain.unshift(c);
    const merged: GlobalOptions = {};
    for (const c of chain) {
      const o = c.opts<GlobalOptions>();
      if (o.socket !== undefined) merged.socket = o.socket;
      if (o.kv !== undefined) merged.kv = o.kv;
      if (o.timeout !== undefined) merged.timeout = o.timeout;
      if (o.logLevel !== undefined) merged.logLevel = o.logLevel;
    }
    return merged;
  }

  applyLogLevel(command: Command): void {
    const level = this.globals(command).logLevel;
    if (level) log.level = level;
  }

  async withApi<T>(command: Command, fn: (api: NetctlApi) => Promise<T>): Promise<T> {
    const g = this.globals(command);
    const backend = await this.ctx.openApi({
      ...(g.socket ? { socket: g.socket } : {}),
      ...(g.kv ? { kv: g.kv } : {}),
      ...(g.timeout !== undefined ? { timeout: g.timeout } : {}),
      env: this.ctx.env,
    });
    try {
      return await fn(backend.api);
    } finally {
      await backend.close();
    }
  }

  /** Report err and remember its status, keeping the first failure's. */
  fail(err: unknown): void {
    const status = reportError(err, this.ctx.stderr);
    if (this.status === EXIT_OK) this.status = status;
  }

  /** Run fn for each ref, reporting failures one by one (`docker network rm a b`). */
  async each<T>(refs: string[], fn: (ref: string) => Promise<T>): Promise<T[]> {
    const results: T[] = [];
    for (const ref of refs) {
      try {
        results.push(await fn(ref));
      } catch (err) {
        this.fail(err);
      }
    }
    return results;
  }
}

/** `a1b2c3d4e5f6`: ids shortened as Docker shows them. */
export const shortId = (id: string, noTrunc = false): string => (noTrunc ? id : id.slice(0, 12));
