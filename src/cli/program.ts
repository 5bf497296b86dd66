/**
 * The netctl command line as a function of argv and a context, so tests run
 * it in-process against a FakeApi; src/cli/main.ts runs it for real.
 */
import { Command, CommanderError } from 'commander';
import { packageVersion } from '../paths.js';
import { Cli, globalOptions } from './cli.js';
import { cniCommand } from './commands/cni.js';
import { hostCommand } from './commands/host.js';
import { daemonCommand, doctorCommand, gcCommand } from './commands/misc.js';
import { networkCommand } from './commands/network.js';
import { repairCommand } from './commands/repair.js';
import { runCommand } from './commands/run.js';
import { sandboxCommand } from './commands/sandbox.js';
import { type CliContext, processContext } from './context.js';
import { EXIT_OK, EXIT_USAGE } from './exit.js';

export function buildProgram(cli: Cli): Command {
  const { stdout, stderr } = cli.ctx;
  const program = new Command()
    .name('netctl')
    .description(
      'Container networking: bridge and overlay networks for Docker, CNI runtimes and plain namespaces',
    )
    .version(packageVersion)
    // Settings below are copied to every command made after them with .command().
    .exitOverride()
    .configureOutput({
      writeOut: (text) => stdout.write(text),
      writeErr: (text) => stderr.write(text),
      // "error: unknown option '-x'" -> "netctl: unknown option '-x'", like our other errors.
      outputError: (text, write) => write(text.replace(/^error: /, 'netctl: ')),
    })
    .showHelpAfterError('(add --help for usage)')
    // Options after the verb belong to it: needed by `run` and `sandbox exec`,
    // whose command lines pass through untouched.
    .enablePositionalOptions();
  for (const option of globalOptions(false)) program.addOption(option);
  program.hook('preAction', (_program, action) => cli.applyLogLevel(action));

  networkCommand(cli, program);
  sandboxCommand(cli, program);
  hostCommand(cli, program);
  runCommand(cli, program);
  gcCommand(cli, program);
  repairCommand(cli, program);
  doctorCommand(cli, program);
  cniCommand(cli, program);
  daemonCommand(cli, program);
  return program;
}

export interface RunCliOptions extends Partial<CliContext> {}

/** Run one netctl command line (argv without node and script) and return its exit status. */
export async function runCli(argv: string[], context: RunCliOptions = {}): Promise<number> {
  const cli = new Cli({ ...processContext(), ...context });
  const program = buildProgram(cli);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return cli.status;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end the parse with an "error" of their own.
      return err.code === 'commander.helpDisplayed' || err.code === 'commander.version'
        ? EXIT_OK
        : EXIT_USAGE;
    }
    cli.fail(err);
    return cli.status;
  }
}
