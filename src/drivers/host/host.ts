/**
 * The host driver: the sandbox uses the host's own network namespace
 * (Docker's --network host). Nothing is created; a join into any other
 * namespace is refused, since it could not mean what the user asked.
 */
import { statSync } from 'node:fs';
import type { Capability, Driver } from '../../core/driver.js';
import type { SandboxInfo } from '../../core/info.js';
import { Errors } from '../../errors.js';

export class HostDriver implements Driver {
  readonly type = 'host';

  constructor(private readonly hostNetns = '/proc/self/ns/net') {}

  capability(): Capability {
    return { dataScope: 'local', connectivityScope: 'local', addressing: false };
  }

  async createNetwork(): Promise<void> {}
  async deleteNetwork(): Promise<void> {}
  async createEndpoint(): Promise<void> {}
  async deleteEndpoint(): Promise<void> {}

  async join(_network: unknown, _endpoint: unknown, sandbox: SandboxInfo): Promise<void> {
    if (statSync(sandbox.key).ino !== statSync(this.hostNetns).ino) {
      throw new Errors.InvalidRequest(
        `a host network can only be joined by a sandbox in the host's namespace`,
      );
    }
  }

  async leave(): Promise<void> {}
}
