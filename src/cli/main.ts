/** netctl command line. */
import { Command, Option } from 'commander';
import { packageVersion } from '../paths.js';
import { runDoctor } from './doctor.js';
import { colorStatus, FORMATS, type Format, printJson, printTable } from './output.js';

// Exit statuses (sysexits.h where one fits).
export const EXIT_OK = 0;
export const EXIT_FAILED_CHECK = 1;

// `netctl ... | head` closes the pipe early: that is the reader's choice, not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(EXIT_OK);
  throw err;
});

const program = new Command()
  .name('netctl')
  .description(
    'Container networking: bridge and overlay networks for Docker, CNI runtimes and plain namespaces',
  )
  .version(packageVersion)
  .showHelpAfterError();

const formatOption = () => new Option('--format <format>', 'output format').choices(FORMATS).default('table');

program
  .command('doctor')
  .description('check that this machine can run netctl (kernel features, privileges, firewall tools)')
  .addOption(formatOption())
  .action(async (options: { format: Format }) => {
    const results = await runDoctor();
    if (options.format === 'json') printJson(results);
    else
      printTable(
        ['check', 'status', 'detail'],
        results.map((r) => [r.check, colorStatus(r.status), r.detail]),
      );
    const failed = results.filter((r) => r.status === 'fail');
    if (options.format === 'table') {
      process.stdout.write(
        failed.length
          ? `${failed.length} check(s) failed: netctl cannot work here until they pass.\n`
          : 'netctl can run here.\n',
      );
    }
    process.exitCode = failed.length ? EXIT_FAILED_CHECK : EXIT_OK;
  });

await program.parseAsync(process.argv);
