/**
 * The sandboxes netctl makes for Docker's containers: one per SandboxKey
 * (the container's netns path, which Docker owns), made on its first Join
 * and dropped with its last endpoint.
 */
import { basename } from 'node:path';
import type { Controller } from '../../controller/controller.js';
import type { Sandbox } from '../../core/model.js';
import { NAME_MAX } from '../../core/schemas.js';
import { Errors, isCode } from '../../errors.js';
import { log } from '../../log.js';
import { ignoreNotFound, isNotFound } from '../errors.js';

/** Label on the sandboxes made for Docker's containers (one per SandboxKey). */
export const DOCKER_SANDBOX_LABEL = 'netctl.docker.sandbox';

/** Name of the sandbox for Docker's SandboxKey: `docker-` and the key's last part (Docker's sandbox id, 12 hex). */
export function dockerSandboxName(key: string): string {
  const tail = basename(key).replace(/[^a-zA-Z0-9_.-]/g, '-');
  return `docker-${tail}`.slice(0, NAME_MAX);
}

/** The sandbox for Docker's SandboxKey: found by its name, made on the first join. */
export async function dockerSandbox(c: Controller, key: string): Promise<Sandbox> {
  const name = dockerSandboxName(key);
  const find = async () => {
    const id = await c.state.sandboxIdByName(name);
    return id ? c.state.sandbox(id) : undefined;
  };
  let sandbox = await find();
  // One a delete marked (its last Leave racing this Join, or a crash after the mark): it goes first.
  if (sandbox?.deleting) {
    await ignoreNotFound(c.deleteSandbox(sandbox.id));
    sandbox = undefined;
  }
  if (sandbox && sandbox.key !== key) {
    throw new Errors.SandboxExists(`${name} (for ${sandbox.key}, not Docker's ${key})`);
  }
  if (!sandbox) {
    try {
      sandbox = await c.createSandbox(
        { name, key, labels: { [DOCKER_SANDBOX_LABEL]: key } },
        { netnsLater: true }, // Docker binds it at the key when the container starts
      );
    } catch (err) {
      sandbox = isCode(err, Errors.SandboxExists) ? await find() : undefined;
      if (!sandbox) throw err;
    }
  }
  return sandbox;
}

/** A sandbox made for Docker goes with its container's last endpoint (its netns is Docker's). */
export async function dropSandboxIfEmpty(c: Controller, sandboxId: string): Promise<void> {
  const sandbox = await c.state.sandbox(sandboxId);
  if (!sandbox || sandbox.labels[DOCKER_SANDBOX_LABEL] === undefined || sandbox.endpointIds.length) return;
  try {
    await c.deleteSandbox(sandbox.id, { ifEmpty: true });
  } catch (err) {
    if (!isNotFound(err) && !isCode(err, Errors.SandboxInUse)) throw err;
  }
  log.debug({ sandbox: sandbox.name }, 'docker sandbox removed with its last endpoint');
}
