/**
 * One ping for every test (CNI's pkg/testutils Ping): from inside a
 * network namespace or a netctl sandbox, or through whatever runs a
 * command in a container (`docker exec`, `podman exec`).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { NETCTL_EXEC } from '../../src/cli/context.js';
import { netctlExecArgs } from '../../src/cli/exec.js';
import type { Sandbox } from '../../src/core/model.js';

const execFileAsync = promisify(execFile);

/** Runs `ping` with these arguments somewhere (in a container); rejects when it fails. */
export type PingRunner = (pingArgs: string[]) => Promise<unknown>;

/**
 * busybox's ping by netctl-exec, in the netns at a path, or in a sandbox
 * with its own /etc files (so a peer's name resolves as it does there).
 */
function byNetctlExec(where: string | Sandbox): PingRunner {
  return (pingArgs) => {
    const command = ['busybox', 'ping', ...pingArgs];
    const args =
      typeof where === 'string' ? ['--netns', where, '--', ...command] : netctlExecArgs(where, command);
    // Without a neighbour answer busybox may wait past -W; stop it.
    return execFileAsync(NETCTL_EXEC, args, { timeout: 1500 });
  };
}

/**
 * ICMP echo to `target` (an address, or a name the sandbox resolves): true
 * as soon as one echo is answered, trying again for up to `seconds` (a
 * neighbour entry left failed by an earlier unreachable try, on a loaded
 * machine, may cost the first echo). A try takes about a second, so an
 * expected `false` is best asked with `seconds` 1.
 */
export async function ping(
  from: string | Sandbox | PingRunner,
  target: string,
  seconds = 3,
): Promise<boolean> {
  const runPing = typeof from === 'function' ? from : byNetctlExec(from);
  const deadline = Date.now() + seconds * 1000;
  do {
    try {
      await runPing(['-c1', '-W1', target]);
      return true;
    } catch {
      // no answer (or stopped): try again until the deadline
    }
  } while (Date.now() < deadline);
  return false;
}
