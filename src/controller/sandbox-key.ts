import { Errors } from '../errors.js';
import { isUnusableNetns } from '../kernel/errors.js';
import { checkFutureNetns, openUntrustedNetns } from '../kernel/netns.js';

/**
 * A sandbox key from outside (a path the REST API, the CLI, CNI_NETNS or
 * Docker's SandboxKey gives) must be a network namespace, and neither
 * netctl's own nor the host's; with netnsLater, a path its runtime mounts
 * one at later (see createSandbox). Opened without blocking, whatever is
 * there (src/kernel/netns.ts).
 */
export function checkSandboxKey(key: string, options: { netnsLater?: boolean } = {}): void {
  try {
    if (options.netnsLater) checkFutureNetns(key);
    else openUntrustedNetns(key).close();
  } catch (err) {
    if (isUnusableNetns(err)) throw new Errors.InvalidNetns(err.message);
    throw err;
  }
}
