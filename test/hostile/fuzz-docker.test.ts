/**
 * Fuzzing the Docker plugin sockets (issue 11, "Do no harm", tests (c)):
 * every route of netctl-bridge (NetworkDriver) and netctl (IpamDriver),
 * found by registering the real plugin servers, with bodies generated from
 * each route's zod schema (src/server/docker/protocol.ts) and mutated from
 * valid ones, POSTed as dockerd does — with no Content-Type, mostly —
 * against a real `netctl daemon` holding what a Docker container would
 * have made: a pool with its gateway and two addresses, a network, an
 * endpoint joined to a sandbox (a real netns) with a published port, and
 * an endpoint made but not joined.
 *
 * Each call must answer within the deadline, as the protocol has it: 200
 * with a JSON object (without an Err), or 500 `{"Err": message}` that is
 * not an internal error (docs/docker.md: every refusal is a 500), or 404
 * `{"Err"}` for a route that does not exist. GET /v1/health must keep
 * answering, the daemon must log no error, a refused call must leave the
 * store and the kernel as they were, and the daemon must be the same
 * healthy process at the end.
 */
import { join } from 'node:path';
import fc from 'fast-check';
import { it } from 'vitest';
import type { z } from 'zod';
import type { DockerApi } from '../../src/controller/api.js';
import { createNetns, deleteNetns } from '../../src/kernel/index.js';
import { buildDockerPluginServer, DOCKER_PLUGINS } from '../../src/server/docker/server.js';
import { probeSocket } from '../../src/server/listen.js';
import {
  type Answer,
  brief,
  CALL_DEADLINE_MS,
  callMix,
  countOutcome,
  type Expectation,
  fuzzedDaemon,
  fuzzGuarded,
  fuzzReport,
  ipamSnapshot,
  type Outcome,
  rawHttp,
} from '../helpers/fuzz-harness.js';
import { StoreBaseline } from '../helpers/fuzz-world.js';
import {
  bridgeOptions,
  hostileBody,
  hostileFiles,
  hostileValue,
  mutatedPayload,
  type Payload,
  parsePayload,
} from '../helpers/hostile-input.js';
import { zodArbitrary } from '../helpers/zod-arbitrary.js';
import { uniqueName } from '../privileged/harness.js';
import { recordFigures } from './figures.js';

/** Where `netctl daemon` serves Docker's plugins by default (a private /run here: scripts/isolate.sh). */
const PLUGIN_DIR = '/run/docker/plugins';

interface Route {
  /** The plugin's socket name: netctl-bridge or netctl. */
  plugin: string;
  url: string;
  body?: z.ZodType;
}

/** Every route of both plugin servers, with its body schema. */
async function pluginRoutes(): Promise<Route[]> {
  const routes: Route[] = [];
  for (const plugin of DOCKER_PLUGINS) {
    const app = buildDockerPluginServer({} as DockerApi, plugin, { logger: false });
    app.addHook('onRoute', (r) => {
      if ([r.method].flat().includes('POST'))
        routes.push({
          plugin: plugin.name,
          url: r.url,
          ...(r.schema?.body ? { body: r.schema.body as z.ZodType } : {}),
        });
    });
    await app.ready();
    await app.close();
  }
  return routes;
}

interface DockerCall {
  plugin: string;
  path: string;
  payload?: Payload;
  contentType?: string;
  /** `plugin url` of the route it was made for; undefined for a route that does not exist. */
  route?: string;
}

/** Calls that answer from constants or read, and so must change nothing whatever they are given. */
const READS = new Set([
  '/NetworkDriver.GetCapabilities',
  '/IpamDriver.GetCapabilities',
  '/IpamDriver.GetDefaultAddressSpaces',
  '/NetworkDriver.EndpointOperInfo',
  '/NetworkDriver.AllocateNetwork',
  '/NetworkDriver.FreeNetwork',
  '/NetworkDriver.DiscoverNew',
  '/NetworkDriver.DiscoverDelete',
]);

const hex64 = (s: string) => s.repeat(64 / s.length);
const NET = hex64('f00d');
const NET2 = hex64('f11e');
const EP1 = hex64('e1e1');
const EP2 = hex64('e2e2');
const EP3 = hex64('e3e3');
const GATEWAY_TYPE = { RequestAddressType: 'com.docker.network.gateway' };

it('Docker plugins: fuzzed and mutated bodies without a Content-Type never get an internal error, a hang or a change when refused', async () => {
  const { daemon, stateDir, watch } = await fuzzedDaemon();
  const files = hostileFiles();
  const netnsNames = [uniqueName('dk'), uniqueName('dk')];
  const [sandboxKey, otherKey] = netnsNames.map((n) => createNetns(n)) as [string, string];
  let inputs = 0;
  try {
    // The API socket answers first; the plugin sockets follow (a dead daemon's may still be there).
    const live = async (p: string) => (await probeSocket(p, 200).catch(() => 'stale')) === 'live';
    for (const deadline = Date.now() + 10_000; ; await new Promise((r) => setTimeout(r, 50))) {
      const sockets = DOCKER_PLUGINS.map((p) => join(PLUGIN_DIR, `${p.name}.sock`));
      if ((await Promise.all(sockets.map(live))).every(Boolean)) break;
      if (Date.now() > deadline) throw new Error(`no plugin sockets in ${PLUGIN_DIR}:\n${daemon.stderr}`);
    }
    const plugin = (name: string, path: string, body: unknown) =>
      rawHttp(join(PLUGIN_DIR, `${name}.sock`), {
        method: 'POST',
        path,
        payload: JSON.stringify(body),
        timeoutMs: 30_000,
      });
    /** A call the world needs: it must succeed. */
    const must = async (name: string, path: string, body: unknown): Promise<Record<string, unknown>> => {
      const a = await plugin(name, path, body);
      if (a.status !== 200) throw new Error(`${path} ${brief(body)}: ${a.status} ${a.text}`);
      return a.json as Record<string, unknown>;
    };
    const net = (path: string, body: unknown) => must('netctl-bridge', `/NetworkDriver.${path}`, body);
    const ipam = (path: string, body: unknown) => must('netctl', `/IpamDriver.${path}`, body);
    const api = daemon.api;

    // ------------------------------------------------------------ the world: one container's worth
    let poolId = '';
    const build = async () => {
      poolId = (
        await ipam('RequestPool', { AddressSpace: 'local', Pool: '10.88.0.0/24', Options: {}, V6: false })
      ).PoolID as string;
      await ipam('RequestAddress', { PoolID: poolId, Address: '', Options: GATEWAY_TYPE });
      for (const a of ['10.88.0.2', '10.88.0.3'])
        await ipam('RequestAddress', { PoolID: poolId, Address: a, Options: {} });
      await net('CreateNetwork', {
        NetworkID: NET,
        Options: { 'com.docker.network.generic': {}, 'com.docker.network.enable_ipv6': false },
        IPv4Data: [
          { AddressSpace: 'local', Pool: '10.88.0.0/24', Gateway: '10.88.0.1/24', AuxAddresses: {} },
        ],
        IPv6Data: [],
      });
      for (const [EndpointID, Address] of [
        [EP1, '10.88.0.2/24'],
        [EP2, '10.88.0.3/24'],
      ])
        await net('CreateEndpoint', {
          NetworkID: NET,
          EndpointID,
          Interface: { Address, AddressIPv6: '', MacAddress: '' },
          Options: {},
        });
      await net('Join', { NetworkID: NET, EndpointID: EP1, SandboxKey: sandboxKey, Options: {} });
      await net('ProgramExternalConnectivity', {
        NetworkID: NET,
        EndpointID: EP1,
        Options: {
          'com.docker.network.portmap': [
            { Proto: 6, IP: '', Port: 80, HostIP: '', HostPort: 18082, HostPortEnd: 18082 },
          ],
        },
      });
    };
    /** Everything Docker and anyone else made, gone: networks through the plugin, then pools. */
    const teardown = async () => {
      for (const n of await api.listNetworks())
        if (n.dockerId) await net('DeleteNetwork', { NetworkID: n.dockerId });
      for (const s of await api.listSandboxes()) await api.deleteSandbox(s.id);
      for (const n of await api.listNetworks()) await api.deleteNetwork(n.id);
      for (const p of (await ipamSnapshot(stateDir)).pools)
        if (p.owner === 'docker:ipam') await ipam('ReleasePool', { PoolID: p.poolId });
    };
    await build();
    const baseline = new StoreBaseline(stateDir);
    await baseline.take();
    const baseAddresses = new Set(['10.88.0.1', '10.88.0.2', '10.88.0.3']);

    /** Put the world back: what the fuzz made goes, through Docker's own calls; a changed world is made again. */
    const restore = async () => {
      // A Plugin.Activate's sweep runs in the background; calls that change state wait for it.
      await net('EndpointOperInfo', { NetworkID: NET, EndpointID: EP1 });
      for (const n of await api.listNetworks()) {
        if (n.dockerId && n.dockerId !== NET) await net('DeleteNetwork', { NetworkID: n.dockerId });
        else if (!n.dockerId) {
          for (const e of (await api.inspectNetwork(n.id)).endpoints)
            if (e.sandboxId) await api.deleteSandbox(e.sandboxId);
          await api.deleteNetwork(n.id);
        }
      }
      const ours = await api.inspectNetwork(NET).catch(() => undefined);
      for (const e of ours?.endpoints ?? []) {
        if (e.id === EP1 || e.id === EP2) continue;
        await net('RevokeExternalConnectivity', { NetworkID: NET, EndpointID: e.id });
        await net('Leave', { NetworkID: NET, EndpointID: e.id });
        await net('DeleteEndpoint', { NetworkID: NET, EndpointID: e.id });
      }
      for (const s of await api.listSandboxes())
        if (s.endpointIds.length === 0) await api.deleteSandbox(s.id);
      const { pools, allocations } = await ipamSnapshot(stateDir);
      for (const p of pools)
        if (p.owner === 'docker:ipam' && p.poolId !== poolId) await ipam('ReleasePool', { PoolID: p.poolId });
      for (const a of allocations)
        if (a.poolId === poolId && a.owner.startsWith('docker:') && !baseAddresses.has(a.address))
          await ipam('ReleaseAddress', { PoolID: poolId, Address: a.address });
      if (await baseline.intact()) return;
      await teardown();
      await build();
      await baseline.take();
    };

    // ------------------------------------------------------------ arbitraries
    const extra = [...files.paths, sandboxKey, otherKey, NET, EP1, poolId];
    const values = hostileValue(extra);
    const ids = (...known: string[]) =>
      fc.oneof(
        { weight: 4, arbitrary: fc.constantFrom(...known) },
        { weight: 1, arbitrary: fc.stringMatching(/^[0-9a-f]{64}$/) },
      );
    const genericOptions = bridgeOptions(['fzdbr0', 'fzdn']);
    const binding = fc.record({
      Proto: fc.constantFrom(6, 17, 132),
      IP: fc.constantFrom('', '10.88.0.9'),
      Port: fc.constantFrom(80, 443, 0, 65535),
      HostIP: fc.constantFrom('', '0.0.0.0', '127.0.0.1', '::'),
      HostPort: fc.constantFrom(0, 18082, 18083, 18090),
      HostPortEnd: fc.constantFrom(0, 18083, 18095, 18081),
    });
    const keys: Record<string, fc.Arbitrary<unknown>> = {
      NetworkID: ids(NET, NET2),
      EndpointID: ids(EP1, EP2, EP3),
      PoolID: fc.constantFrom(poolId, poolId, 'local/10.89.0.0/24', 'global/10.88.0.0/24', 'nope', ''),
      Pool: fc.constantFrom(
        '10.88.0.0/24',
        '10.89.0.0/24',
        '10.88.0.0/16',
        '10.88.0.128/25',
        '',
        'fd88::/64',
        '0.0.0.0/0',
      ),
      SubPool: fc.constantFrom('', '10.88.0.128/25', '10.89.0.128/25', '10.90.0.0/24'),
      Gateway: fc.constantFrom('10.88.0.1/24', '10.89.0.1/24', '', '10.88.0.1', '10.88.0.200/24'),
      Address: fc.constantFrom(
        '10.88.0.2/24',
        '10.88.0.9/24',
        '10.89.0.9/24',
        '10.88.0.9',
        '',
        '10.88.0.3',
        '10.88.0.1',
        '10.88.0.255',
      ),
      AddressIPv6: fc.constantFrom('', 'fd88::9/64'),
      MacAddress: fc.constantFrom('', '02:42:0a:58:00:09', '02:42:0a:58:00:02'),
      AddressSpace: fc.constantFrom('local', 'global', 'nowhere'),
      SandboxKey: fc.constantFrom(sandboxKey, otherKey, ...files.paths),
      'com.docker.network.generic': genericOptions,
      'com.docker.network.portmap': fc.array(binding, { maxLength: 3 }),
      Options: fc.oneof(
        fc.constant({}),
        fc.constant(GATEWAY_TYPE),
        fc.constantFrom('fzdn', 'docker-f00df00df00d', 'nope').map((n) => ({ 'netctl.name': n })),
      ),
    };
    const routes = await pluginRoutes();
    const routeOf = new Map(routes.map((r) => [`${r.plugin} ${r.url}`, r]));
    const contentTypeArb = fc.oneof(
      { weight: 8, arbitrary: fc.constant<string | undefined>(undefined) },
      {
        weight: 2,
        arbitrary: fc.constantFrom(
          'application/json',
          'application/vnd.docker.plugins.v1.2+json',
          'text/plain',
          '',
        ),
      },
    );
    const bodyOf = (route: Route, mutate: boolean): fc.Arbitrary<Payload> => {
      const valid = route.body ? zodArbitrary(route.body, { keys, presence: 0.4 }) : fc.constant({});
      return mutate ? mutatedPayload(valid, values) : valid.map((v) => JSON.stringify(v));
    };
    const routeCall = (mutate: boolean): fc.Arbitrary<DockerCall> =>
      fc.constantFrom(...routes).chain((route) =>
        fc.record({
          route: fc.constant(`${route.plugin} ${route.url}`),
          plugin: fc.constant(route.plugin),
          path: fc.constant(route.url),
          payload: bodyOf(route, mutate),
          contentType: contentTypeArb,
        }),
      );
    /** A call to a route the plugin does not have (or has on the other socket). */
    const oddCall: fc.Arbitrary<DockerCall> = fc.record({
      plugin: fc.constantFrom('netctl-bridge', 'netctl'),
      path: fc.constantFrom(
        '/',
        '/Plugin.Deactivate',
        '/NetworkDriver.Nope',
        '/IpamDriver.RequestPool/',
        '/networkdriver.createnetwork',
        '/NetworkDriver.CreateNetwork?x=1',
        '/IpamDriver.RequestPool',
        '/NetworkDriver.Join',
      ),
      payload: hostileBody(values),
      contentType: contentTypeArb,
    });
    const callArb = callMix(routeCall, oddCall);

    const expectation = (c: DockerCall): Expectation => {
      const route = routeOf.get(`${c.plugin} ${c.path}`);
      if (!route) return 'nothing'; // a route the plugin does not have: 404, and nothing done
      if (route.body) {
        const parsed = parsePayload(c.payload);
        if (c.payload && (!parsed || !route.body.safeParse(parsed.json).success)) return 'refusal';
      }
      return READS.has(route.url) ? 'nothing' : 'anything';
    };

    // ------------------------------------------------------------ one call, and what its answer must be
    const describe = (c: DockerCall) =>
      `${c.plugin}.sock POST ${c.path} ${c.contentType === undefined ? '(no content type)' : `(${brief(c.contentType, 40)})`} ${c.payload === undefined ? '(no body)' : brief(c.payload, 400)}`;

    const send = async (c: DockerCall): Promise<Outcome> => {
      inputs++;
      const label = describe(c);
      const a = await watch.promptly(label, () =>
        rawHttp(join(PLUGIN_DIR, `${c.plugin}.sock`), {
          method: 'POST',
          path: c.path,
          payload: c.payload,
          contentType: c.contentType,
          timeoutMs: CALL_DEADLINE_MS + 1000,
        }),
      );
      return judge(label, c, a);
    };

    const judge = (label: string, c: DockerCall, a: Answer): Outcome => {
      countOutcome(`${c.plugin} ${c.path} ${a.status}`, (a.json as { Err?: unknown } | undefined)?.Err);
      const fail = (why: string) => {
        throw new Error(`${label}: ${why}: ${a.status} ${brief(a.text, 1000)}`);
      };
      const body = a.json as Record<string, unknown> | undefined;
      const isObject = typeof body === 'object' && body !== null && !Array.isArray(body);
      const err = isObject ? body.Err : undefined;
      if (a.status === 200) {
        if (!isObject) fail('a 200 whose body is not a JSON object');
        if (err !== undefined && err !== '') fail('a 200 with an Err');
        return { accepted: true };
      }
      if (a.status === 404 && routeOf.has(`${c.plugin} ${c.path}`)) fail('404 for a route the plugin has');
      if (a.status !== 500 && a.status !== 404)
        fail('neither 200 nor a 500 {"Err"} (nor 404 for an unknown route)');
      if (!isObject || Object.keys(body).join() !== 'Err' || typeof err !== 'string' || err === '')
        fail('an error that is not {"Err": message}');
      if (/^internal error/i.test(err as string)) fail('an internal error');
      return { accepted: false };
    };

    // ------------------------------------------------------------ the property
    await fuzzGuarded({
      label: 'docker',
      runs: 60,
      maxCalls: 8,
      calls: callArb,
      stateDir,
      daemonPid: daemon.pid,
      carries: (c) => [c.payload, parsePayload(c.payload)?.json],
      expectation,
      send,
      restore,
      describe,
    });
    await watch.expectAlive();
  } finally {
    recordFigures({ inputs });
    process.stdout.write(fuzzReport('docker'));
    files.remove();
    for (const n of netnsNames) deleteNetns(n);
  }
}, 300_000);
