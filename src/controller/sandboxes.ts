/**
 * Sandboxes: a network namespace with its /etc files, made by netctl, by
 * its runtime (CNI, Docker) or shared with another sandbox or the host.
 */
import { join } from 'node:path';
import type { Sandbox } from '../core/model.js';
import { type CreateSandboxRequest, createSandboxSchema, sandboxPidSchema } from '../core/schemas.js';
import { parseRequest } from '../core/validate.js';
import { Errors, ignoreNotFound } from '../errors.js';
import {
  createNetns,
  deleteNetns,
  hasErrorCode,
  linkSetUp,
  Netlink,
  netnsPath,
  pinCurrentNetns,
} from '../kernel/index.js';
import { sandboxOwner } from '../owners.js';
import { RUN_DIR } from '../paths.js';
import { removeSandboxEtc, writeSandboxEtc } from '../sandbox/etc.js';
import { bootId, isStale, netnsInode, processStart, staleReason } from '../sandbox/identity.js';
import { claimNetns, listSandboxRunDirs } from '../sandbox/owner.js';
import type { SandboxDetails } from './api.js';
import { type ControllerContext, newId } from './context.js';
import type { Endpoints } from './endpoints.js';
import { retryConflicts } from './intent-runner.js';
import { crashPoint } from './intents.js';
import { checkSandboxKey } from './sandbox-key.js';
import { type ClaimOps, type IntentEnd, NO_CLAIMS } from './state.js';

/** Named netns netctl makes for its own sandboxes. */
export const sandboxNetnsName = (name: string) => `netctl-${name}`;

/** Where the host's own namespace is pinned for sandboxes on the host network. */
export const HOST_NETNS_PIN = join(RUN_DIR, 'host.netns');

export class Sandboxes {
  constructor(
    private readonly ctx: ControllerContext,
    private readonly endpoints: Endpoints,
  ) {}

  async listSandboxes(): Promise<Sandbox[]> {
    return (await this.ctx.state.sandboxes()).sort((a, b) => a.name.localeCompare(b.name));
  }

  /**
   * A sandbox: a netns netctl makes, one someone else made (`key`), or a
   * shared one. With `netnsLater`, `key` names a netns its runtime makes
   * only after the join (Docker binds the container's netns at its
   * SandboxKey when the container starts): it is not checked, and the
   * runtime says when the sandbox goes (Sandbox.netnsInode 0).
   */
  async createSandbox(input: CreateSandboxRequest, options: { netnsLater?: boolean } = {}): Promise<Sandbox> {
    const req = parseRequest(createSandboxSchema, input);
    if (options.netnsLater && !req.key)
      throw new Errors.InvalidRequest('a sandbox made before its netns needs a key');
    let madeNetns = false; // the undo deletes only a netns made here
    const holder = await this.ctx.state.sandboxIdByName(req.name);
    if (holder && holder !== req.replaces) throw new Errors.SandboxExists(req.name);
    if (req.key && req.netnsOf) throw new Errors.InvalidRequest('give either key or netnsOf, not both');
    const id = newId();
    const shared = req.netnsOf ? await this.sharedNetns(req.netnsOf) : undefined;
    const ownsNetns = req.key === undefined && shared === undefined;
    const key = req.key ?? shared?.key ?? netnsPath(sandboxNetnsName(req.name));
    if (req.key) checkSandboxKey(req.key, options);
    if (holder) await ignoreNotFound(this.deleteSandbox(holder));
    const create = async () => {
      if (ownsNetns) {
        // Its owner tag first, so gc can find the netns should we die before the record.
        claimNetns(id, key);
        try {
          createNetns(sandboxNetnsName(req.name));
        } catch (err) {
          if (!hasErrorCode(err, 'EEXIST')) throw err;
          // Another sandbox of that name being made (its run dir claims the
          // netns), or a netns that no sandbox of ours made: not ours to take.
          const claimed = listSandboxRunDirs().some((d) => d.id !== id && d.netns === key);
          throw claimed ? new Errors.SandboxExists(req.name) : new Errors.NotOwned(`netns ${key}`);
        }
        madeNetns = true;
        const h = Netlink.open(key);
        try {
          await linkSetUp(h, 'lo');
        } finally {
          h.close();
        }
      }
      const inode = options.netnsLater ? 0 : netnsInode(key);
      if (inode === undefined) throw new Errors.SandboxNotFound(key);
      const hostname = req.hostname ?? req.name;
      const sandbox: Sandbox = {
        id,
        name: req.name,
        key,
        netnsInode: inode,
        bootId: bootId(),
        ownsNetns,
        ...(shared ? { netnsOf: shared.of } : {}),
        hostname,
        endpointIds: [],
        labels: req.labels,
        created: new Date().toISOString(),
      };
      if (ownsNetns) writeSandboxEtc(id, hostname, []);
      crashPoint('createSandbox.record');
      await this.ctx.state.createSandbox(sandbox);
      return sandbox;
    };
    // A sandbox in someone else's netns is its record alone, written in one
    // commit: nothing to undo, so no intent (two commits less per CNI ADD).
    if (!ownsNetns) return this.ctx.gate.shared(create);
    return this.ctx.intents.run('createSandbox', 'create', [sandboxOwner(id)], create, async () => {
      // Only a netns made here: the name may have been taken by someone else's (EEXIST).
      if (madeNetns) deleteNetns(key);
      removeSandboxEtc(id);
    });
  }

  /** The namespace a sandbox shares: the host's (pinned once) or another sandbox's. */
  private async sharedNetns(netnsOf: string): Promise<{ key: string; of: string }> {
    if (netnsOf === 'host') return { key: pinCurrentNetns(HOST_NETNS_PIN), of: 'host' };
    const target = await this.ctx.findSandbox(netnsOf.slice('container:'.length));
    if (target.netnsOf && target.netnsOf !== 'host') {
      return this.sharedNetns(`container:${target.netnsOf}`); // share with the owner, not a sharer
    }
    return { key: target.key, of: target.netnsOf ?? target.id };
  }

  /**
   * Remove a sandbox with its endpoints. With ifEmpty, only one with no
   * endpoint (made or being made): NETCTL_SANDBOX_IN_USE otherwise — the
   * sandbox is marked first, and a connect's claim compares the version it
   * read, so none joins between the look and the removal (a runtime's
   * cleanup of the sandbox it made never takes another call's endpoint).
   */
  async deleteSandbox(ref: string, options: { ifEmpty?: boolean } = {}): Promise<Sandbox> {
    const sandbox = await this.ctx.findSandbox(ref);
    const recordAlone = !sandbox.ownsNetns && !sandbox.pid;
    // A runtime's sandbox, if empty, is its record alone: removed in one
    // commit on the version read with its attachments, so an endpoint
    // committed meanwhile (which rewrites the record) makes it look again;
    // one still being made fails at its own commit and is undone.
    if (options.ifEmpty && recordAlone) {
      await this.ctx.gate.shared(() =>
        retryConflicts('deleteSandbox', async () => {
          const current = await this.ctx.state.sandboxVersioned(sandbox.id);
          if (!current) return;
          await this.refuseIfAttached(current.sandbox);
          await this.ctx.state.deleteSandboxAt(current.sandbox, current.version);
        }),
      );
      return sandbox;
    }
    // Otherwise marked first (claims.ts): no connect joins it from then on,
    // and one in flight is refused at its commit, so no endpoint outlives it.
    const mark = async (): Promise<ClaimOps> => {
      const current = await this.ctx.state.sandboxVersioned(sandbox.id);
      if (!current) throw new Errors.SandboxNotFound(ref);
      return this.ctx.state.markDeleting(current.sandbox, current.version, true);
    };
    // A runtime's sandbox with endpoints: marked alone (no intent: nothing of
    // its own in the kernel); a crash after the mark leaves a record the
    // runtime's retried DEL, or gc once the netns is gone, removes.
    if (recordAlone) {
      await this.ctx.gate.shared(async () => {
        await retryConflicts('deleteSandbox', async () => this.ctx.state.applyClaims(await mark()));
        await this.removeSandbox(sandbox);
      });
      return sandbox;
    }
    await this.ctx.intents.run(
      options.ifEmpty ? 'deleteSandboxIfEmpty' : 'deleteSandbox',
      'delete',
      [sandboxOwner(sandbox.id)],
      async (end) => {
        if (options.ifEmpty) await this.refuseIfAttached(sandbox);
        end.started = true;
        await this.removeSandbox(sandbox, end);
      },
      async () => undefined,
      {
        take: mark,
        release: () => this.unmarkSandbox(sandbox.id),
        landed: async () => ((await this.ctx.state.sandbox(sandbox.id)) ? undefined : { result: undefined }),
      },
    );
    return sandbox;
  }

  /** NETCTL_SANDBOX_IN_USE when endpoints are attached to the sandbox (made, or being made). */
  async refuseIfAttached(sandbox: Sandbox): Promise<void> {
    const owners = await this.ctx.state.attachments(sandbox.id);
    if (owners.length)
      throw new Errors.SandboxInUse(sandbox.name, owners.map((o) => o.slice(0, 15)).join(', '));
  }

  /** The writes that clear a sandbox's deleting mark (none when it is gone). */
  async unmarkSandbox(sandboxId: string): Promise<ClaimOps> {
    const current = await this.ctx.state.sandboxVersioned(sandboxId);
    return current?.sandbox.deleting
      ? this.ctx.state.markDeleting(current.sandbox, current.version, false)
      : NO_CLAIMS;
  }

  /** Idempotent teardown of a sandbox, its endpoints and its process (its record last, ending end). */
  async removeSandbox(sandbox: Sandbox, end?: IntentEnd): Promise<void> {
    // Its endpoints as the record has them now (after a delete's mark: no more come).
    const current = (await this.ctx.state.sandbox(sandbox.id)) ?? sandbox;
    for (const endpoint of await this.ctx.state.sandboxEndpoints(current))
      await this.endpoints.removeEndpoint(endpoint);
    // After a reboot or with a reused path, the pid and the netns at the
    // path are others' now: stop and delete only what is still the sandbox's.
    if (sandbox.pid && sandbox.bootId === bootId() && processStart(sandbox.pid) === sandbox.pidStart)
      stopProcess(sandbox.pid);
    if (sandbox.ownsNetns && !isStale(sandbox)) deleteNetns(sandbox.key);
    crashPoint('deleteSandbox.netns');
    removeSandboxEtc(sandbox.id);
    await this.ctx.state.deleteSandbox(sandbox, end);
  }

  async inspectSandbox(ref: string): Promise<SandboxDetails> {
    const sandbox = await this.ctx.findSandbox(ref);
    const networks = new Map((await this.ctx.state.networks()).map((n) => [n.id, n.name]));
    // From the sandbox's own list, not a scan of every endpoint: a CNI ADD and DEL inspect one each.
    const endpoints = (await this.ctx.state.sandboxEndpoints(sandbox)).map((e) => ({
      ...e,
      networkName: networks.get(e.networkId) ?? e.networkId,
    }));
    const stale = staleReason(sandbox);
    return { sandbox, endpoints, ...(stale ? { stale } : {}) };
  }

  async setSandboxPid(ref: string, input: number): Promise<Sandbox> {
    const { pid } = parseRequest(sandboxPidSchema, { pid: input });
    const sandbox = await this.ctx.findSandbox(ref);
    const pidStart = processStart(pid);
    const updated = await this.ctx.state.updateSandbox(sandbox.id, (s) => ({
      ...s,
      pid,
      ...(pidStart !== undefined ? { pidStart } : {}),
    }));
    if (!updated) throw new Errors.SandboxNotFound(ref);
    return updated;
  }
}

function stopProcess(pid: number): void {
  // Only one process: 0 and -1 would signal a group or everyone (records from before the pid check).
  if (!Number.isInteger(pid) || pid < 2) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}
