/**
 * Reference commands, run exactly as a user would run them: one process per
 * command, the binary spawned directly with its argument vector (never a
 * shell string), waited for until it exits.
 */
import { execFile } from 'node:child_process';

export class CommandError extends Error {
  override readonly name = 'CommandError';
  constructor(
    readonly argv: readonly string[],
    readonly exitCode: number | string | null,
    readonly stderr: string,
  ) {
    super(`\`${argv.join(' ')}\` failed (${exitCode ?? 'signal'}): ${stderr.trim() || 'no output'}`);
  }
}

/** Run file with args; resolves with stdout, rejects with CommandError. */
export function runCommand(file: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { encoding: 'utf8' }, (error, stdout, stderr) => {
      if (error) {
        const code = (error as { code?: number | string }).code ?? null;
        reject(new CommandError([file, ...args], code, stderr || error.message));
      } else {
        resolve(stdout);
      }
    });
  });
}

/** `ip ARGS...` */
export function ip(...args: string[]): Promise<string> {
  return runCommand('ip', args);
}

/** `bridge ARGS...` */
export function bridge(...args: string[]): Promise<string> {
  return runCommand('bridge', args);
}
