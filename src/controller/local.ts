/**
 * The controller in the CLI's own process, for when no daemon runs.
 *
 * PLACEHOLDER on the `cli` branch: the lead replaces this module with the
 * real one (a Controller over the store named by `kv`, or the embedded
 * default). The CLI depends only on this signature.
 */
import { Errors } from '../errors.js';
import type { NetctlApi } from './api.js';

export interface LocalApiOptions {
  /** Store URL (`--kv`), e.g. redis://host:6379/0; the embedded store when absent. */
  kv?: string;
  /** The daemon socket the CLI tried first (for messages). */
  socket?: string;
}

export async function createLocalApi(
  options: LocalApiOptions,
): Promise<{ api: NetctlApi; close(): Promise<void> }> {
  throw new Errors.DaemonUnavailable(options.socket ?? 'its socket', 'in-process mode is not wired yet');
}
