/**
 * Claims (src/controller/claims.ts) on the memory store: host ports are
 * resolved against what the store holds and taken by compare-and-write, so
 * of two writers that read the same blocks only one commits.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import {
  clash,
  dropAttachment,
  dropPorts,
  EPHEMERAL_PORTS,
  portWishes,
  takeAttachment,
  takePorts,
} from '../../../src/controller/claims.js';
import { claimKeys } from '../../../src/controller/keys.js';
import { mergeOps } from '../../../src/controller/state.js';
import type { PortMapping } from '../../../src/core/model.js';
import { KvConflictError, type KvStore } from '../../../src/kv/index.js';
import { MemoryStore } from '../../../src/kv/testing/memory.js';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const name = async (owner: string) => `holder ${owner.slice(3, 7)}`;

let kv: KvStore;
beforeEach(() => {
  kv = new MemoryStore();
});

async function take(id: string, requests: Parameters<typeof portWishes>[0], previous: PortMapping[] = []) {
  const { mappings, claim } = await takePorts(kv, id, portWishes(requests), previous, name);
  await kv.txn(claim.compare, claim.ops);
  return mappings;
}

describe('host ports', () => {
  it('clash on a common port and address; any address clashes with every address', () => {
    expect(clash({ first: 80, last: 80 }, { first: 80, last: 80, hostIp: '10.0.0.1' })).toBe(true);
    expect(
      clash({ first: 80, last: 90, hostIp: '10.0.0.1' }, { first: 90, last: 95, hostIp: '10.0.0.1' }),
    ).toBe(true);
    expect(
      clash({ first: 80, last: 80, hostIp: '10.0.0.1' }, { first: 80, last: 80, hostIp: '10.0.0.2' }),
    ).toBe(false);
    expect(clash({ first: 80, last: 89 }, { first: 90, last: 95 })).toBe(false);
  });

  it('an exact port taken by another endpoint is NETCTL_PORT_IN_USE naming it; another protocol is free', async () => {
    await take(A, [{ proto: 'tcp', hostPort: 8080, containerPort: 80 }]);
    await expect(take(B, [{ proto: 'tcp', hostPort: 8080, containerPort: 80 }])).rejects.toMatchObject({
      code: 'NETCTL_PORT_IN_USE',
      message: 'host port 0.0.0.0:8080/tcp is already published by holder aaaa',
    });
    expect(await take(B, [{ proto: 'udp', hostPort: 8080, containerPort: 80 }])).toEqual([
      { proto: 'udp', hostPort: 8080, containerPort: 80 },
    ]);
  });

  it('a range across blocks is held in each; a port inside it is taken', async () => {
    await take(A, [
      { proto: 'tcp', hostPort: 250, hostPortEnd: 520, containerPort: 250, containerPortEnd: 520 },
    ]);
    expect((await kv.list(claimKeys.portsOf('tcp'))).map((e) => e.key)).toEqual([
      claimKeys.ports('tcp', 0),
      claimKeys.ports('tcp', 1),
      claimKeys.ports('tcp', 2),
    ]);
    await expect(take(B, [{ proto: 'tcp', hostPort: 400, containerPort: 80 }])).rejects.toMatchObject({
      code: 'NETCTL_PORT_IN_USE',
    });
  });

  it('port 0 picks the first free ephemeral port; a host range for one container port picks in it', async () => {
    const [first] = await take(A, [{ proto: 'tcp', hostPort: 0, containerPort: 80 }]);
    const [second] = await take(B, [{ proto: 'tcp', hostPort: 0, containerPort: 80 }]);
    expect([first?.hostPort, second?.hostPort]).toEqual([EPHEMERAL_PORTS.first, EPHEMERAL_PORTS.first + 1]);
    await take(A, [{ proto: 'tcp', hostPort: 7000, containerPort: 80 }], [first as PortMapping]);
    const [picked] = await take(B, [{ proto: 'tcp', hostPort: 7000, hostPortEnd: 7005, containerPort: 80 }]);
    expect(picked).toEqual({ proto: 'tcp', hostPort: 7001, containerPort: 80 });
  });

  it("a republish replaces the owner's own ports; dropPorts gives them all back", async () => {
    const first = await take(A, [{ proto: 'tcp', hostPort: 8080, containerPort: 80 }]);
    const second = await take(A, [{ proto: 'tcp', hostPort: 8080, containerPort: 81 }], first);
    expect(second).toEqual([{ proto: 'tcp', hostPort: 8080, containerPort: 81 }]);
    const claim = await dropPorts(kv, { id: A, portMappings: second });
    await kv.txn(claim.compare, claim.ops);
    expect(await kv.list(claimKeys.portsOf('tcp'))).toEqual([]);
  });

  it('of two writers that read the same blocks, the second commit fails its compare and writes nothing', async () => {
    const one = await takePorts(
      kv,
      A,
      portWishes([{ proto: 'tcp', hostPort: 8080, containerPort: 80 }]),
      [],
      name,
    );
    const two = await takePorts(
      kv,
      B,
      portWishes([{ proto: 'tcp', hostPort: 8080, containerPort: 80 }]),
      [],
      name,
    );
    await kv.txn(one.claim.compare, one.claim.ops);
    await expect(kv.txn(two.claim.compare, two.claim.ops)).rejects.toBeInstanceOf(KvConflictError);
    const [block] = await kv.list(claimKeys.portsOf('tcp'));
    expect(block?.value).toEqual({ claims: [{ first: 8080, last: 8080, owner: `ep:${A}` }] });
  });
});

describe('attachments', () => {
  it('a sandbox joins a network once and an interface name is taken once; dropping frees both', async () => {
    const at = { networkId: 'n1', scope: 'local' as const, sandboxId: 's1', ifname: 'eth0' };
    const first = takeAttachment(A, at);
    await kv.txn(first.compare, first.ops);
    const again = takeAttachment(B, at);
    await expect(kv.txn(again.compare, again.ops)).rejects.toMatchObject({
      key: claimKeys.attach('s1', 'n1'),
    });
    const sameIfname = takeAttachment(B, {
      networkId: 'n2',
      scope: 'local',
      sandboxId: 's1',
      ifname: 'eth0',
    });
    await expect(kv.txn(sameIfname.compare, sameIfname.ops)).rejects.toMatchObject({
      key: claimKeys.ifname('s1', 'eth0'),
    });
    const drop = mergeOps(dropAttachment(A, at));
    await kv.txn(drop.compare, drop.ops);
    await kv.txn(again.compare, again.ops);
    expect((await kv.list('netctl/v1/')).map((e) => [e.key, e.value])).toEqual([
      [claimKeys.attach('s1', 'n1'), `ep:${B}`],
      [claimKeys.ifname('s1', 'eth0'), `ep:${B}`],
      [claimKeys.member('n1', B), `ep:${B}`],
    ]);
  });
});
