/**
 * The container's sandbox: one per container id, attached to the runtime's
 * netns (`key` = CNI_NETNS; netctl does not own it), labelled with the
 * container id so DEL and GC find it and nothing made by the CLI or Docker
 * is ever touched.
 */
import { createHash } from 'node:crypto';
import type { NetctlApi, SandboxDetails } from '../controller/api.js';
import { NAME_MAX } from '../core/schemas.js';
import { Errors, isCode } from '../errors.js';
import { type CmdArgs, CniCode, CniError } from './skel.js';

/** Label on every sandbox netctl-cni makes: the runtime's container id. */
export const CONTAINER_ID_LABEL = 'netctl.cni.containerID';

/** A sandbox name for a container id, within netctl's 64-character names (the id in full when it fits). */
export function sandboxNameOf(containerId: string): string {
  const name = `cni-${containerId}`;
  if (name.length <= NAME_MAX) return name;
  const hash = createHash('sha256').update(containerId).digest('hex').slice(0, 12);
  return `cni-${containerId.slice(0, NAME_MAX - 'cni-'.length - 1 - hash.length)}-${hash}`;
}

/** The container's sandbox, if the runtime attached it before; undefined when there is none. */
export async function findSandbox(api: NetctlApi, containerId: string): Promise<SandboxDetails | undefined> {
  try {
    return await api.inspectSandbox(sandboxNameOf(containerId));
  } catch (err) {
    if (isCode(err, Errors.SandboxNotFound)) return undefined;
    throw err;
  }
}

/** How many times an ADD waits (20 ms more each time, 2.3 s in all) for a marked sandbox to settle. */
const DELETING_WAITS = 15;

/**
 * The container's sandbox on its netns: the one an earlier ADD made (for
 * another network) or a new one. A sandbox of the same container id on
 * another namespace is a restarted container's leftover: it goes first.
 */
export async function ensureSandbox(
  api: NetctlApi,
  args: CmdArgs,
): Promise<{ details: SandboxDetails; created: boolean }> {
  const name = sandboxNameOf(args.containerId);
  for (let attempt = 0, waits = 0; ; attempt++) {
    const found = await findSandbox(api, args.containerId);
    if (found?.sandbox.deleting && found.sandbox.key === args.netns && waits < DELETING_WAITS) {
      // Another ADD's cleanup is looking whether it is empty: it goes, or stays (in use) and
      // is unmarked. Never deleted from here: an attachment that won on it may be committed.
      waits++;
      attempt--;
      await new Promise((r) => setTimeout(r, 20 * waits));
      continue;
    }
    if (found && found.sandbox.key === args.netns && !found.stale && !found.sandbox.deleting)
      return { details: found, created: false };
    try {
      // A restarted container's leftover, or one whose delete died half-way (still marked), goes
      // first; a refused CNI_NETNS leaves it (the controller checks the key before).
      const sandbox = await api.createSandbox({
        name,
        key: args.netns,
        labels: { [CONTAINER_ID_LABEL]: args.containerId },
        ...(found ? { replaces: found.sandbox.id } : {}),
      });
      return { details: { sandbox, endpoints: [] }, created: true };
    } catch (err) {
      if (!isCode(err, Errors.SandboxExists) || attempt >= 3) throw asCniError(err);
    }
  }
}

/**
 * Go skel's check, done by the controller for every entry point: CNI_NETNS
 * must be a netns, and neither the plugin's own nor the host's. Its
 * refusal as the CNI error.
 */
function asCniError(err: unknown): unknown {
  return isCode(err, Errors.InvalidNetns)
    ? new CniError(CniCode.INVALID_ENVIRONMENT, 'invalid CNI_NETNS', (err as Error).message)
    : err;
}

/** Remove the container's sandbox if nothing is (being) attached to it; gone or in use is fine. */
export async function dropSandboxIfEmpty(api: NetctlApi, sandboxId: string): Promise<void> {
  try {
    await api.deleteSandbox(sandboxId, { ifEmpty: true });
  } catch (err) {
    if (!isCode(err, Errors.SandboxInUse, Errors.SandboxNotFound)) throw err;
  }
}
