/**
 * Reference commands, run exactly as a user would run them: one process per
 * command, the binary spawned directly with its argument vector (never a
 * shell string), waited for until it exits.
 */
import { execFile, spawn } from 'node:child_process';

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

/** Run file with args and input on stdin (e.g. `iptables-restore`); resolves with stdout. */
export function runCommandWithInput(file: string, args: readonly string[], input: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, [...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.on('error', (err) => reject(new CommandError([file, ...args], null, err.message)));
    child.on('close', (code) => {
      if (code === 0) resolve(Buffer.concat(stdout).toString('utf8'));
      else reject(new CommandError([file, ...args], code, Buffer.concat(stderr).toString('utf8')));
    });
    // A child that died early closes stdin; its exit status says why.
    child.stdin.on('error', () => {});
    child.stdin.end(input);
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
