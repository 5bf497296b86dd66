/**
 * The none driver: a sandbox on a `none` network has its loopback and
 * nothing else (Docker's --network none). No addresses, no links.
 */
import type { Capability, Driver } from '../../core/driver.js';

export class NoneDriver implements Driver {
  readonly type = 'none';

  capability(): Capability {
    return { dataScope: 'local', connectivityScope: 'local', addressing: false };
  }

  async createNetwork(): Promise<void> {}
  async deleteNetwork(): Promise<void> {}
  async createEndpoint(): Promise<void> {}
  async deleteEndpoint(): Promise<void> {}
  async join(): Promise<void> {}
  async leave(): Promise<void> {}
}
