/**
 * Running iptables tools: argv arrays and stdin, never a shell, optionally
 * inside a network namespace. Injected into the backend so unit tests can
 * feed captured iptables-save text and capture restore input.
 */
import { spawn } from 'node:child_process';
import { type NetnsRef, withNetns } from '../../kernel/netns.js';
import { FirewallCommandError } from '../errors.js';

/** Run file with args (and input on stdin); resolve with stdout; reject with FirewallCommandError. */
export type Exec = (file: string, args: readonly string[], input?: string) => Promise<string>;

/** Never hang a caller forever (e.g. on a stuck xtables lock holder). */
const TIMEOUT_MS = 60_000;

/**
 * The real Exec. With netns, the child is spawned while this thread is
 * inside netns (spawn forks synchronously), so it starts and stays there;
 * the thread returns at once and the output is awaited outside.
 */
export function spawnExec(netns?: NetnsRef): Exec {
  return (file, args, input) =>
    new Promise((resolve, reject) => {
      const start = () =>
        spawn(file, [...args], {
          stdio: ['pipe', 'pipe', 'pipe'],
          timeout: TIMEOUT_MS,
          env: { ...process.env, LC_ALL: 'C' },
        });
      const child = netns === undefined ? start() : withNetns(netns, start);
      const stdout: Buffer[] = [];
      const stderr: Buffer[] = [];
      child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
      child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
      child.on('error', (err: NodeJS.ErrnoException) => {
        reject(new FirewallCommandError(file, args, null, err.code === 'ENOENT' ? 'not found' : err.message));
      });
      child.on('close', (code) => {
        const err = Buffer.concat(stderr).toString('utf8');
        if (code === 0) resolve(Buffer.concat(stdout).toString('utf8'));
        else reject(new FirewallCommandError(file, args, code, err));
      });
      // A child that died early closes stdin; its exit status tells why.
      child.stdin.on('error', () => {});
      child.stdin.end(input ?? '');
    });
}
