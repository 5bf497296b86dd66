/** netctl command line: the process around runCli (src/cli/program.ts). */
import { EXIT_OK } from './exit.js';
import { runCli } from './program.js';

// `netctl ... | head` closes the pipe early: that is the reader's choice, not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(EXIT_OK);
  throw err;
});

process.exitCode = await runCli(process.argv.slice(2));
