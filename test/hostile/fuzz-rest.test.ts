/**
 * Fuzzing the REST API (issue 11, "Do no harm", tests (c)): every route of
 * the daemon's API socket, with bodies generated from the route's own zod
 * schema (found by registering the real routes, so a new route or field is
 * fuzzed without touching this file) and mutated from valid ones
 * (test/helpers/hostile-input.ts), against a real `netctl daemon` holding a
 * small world: two networks, a sandbox on its own and one connected with a
 * published port.
 *
 * Each call must answer within the deadline with a status below 500: 2xx,
 * or the registry's `{code, message, class}` with its class's status (413
 * for a body over the limit); POST /v1/cni answers 200 with the plugin's
 * output and exit status, which must be a CNI code and never 101. GET
 * /v1/health must keep answering, the daemon must log no error, and a
 * refused call must leave the store and the kernel as they were
 * (test/helpers/fuzz-harness.ts). After the run the daemon is the same
 * process, and healthy.
 *
 * Not sent: a pid other than this test's own sleeping child to PUT
 * /v1/sandboxes/REF/pid (the sandbox's removal SIGKILLs the pid recorded
 * there: a random one could be anybody's process), and paths under
 * /proc/PID (isSafeToSend).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fc from 'fast-check';
import { it } from 'vitest';
import type { z } from 'zod';
import type { CniBackend } from '../../src/cni/plugins.js';
import { VERBS } from '../../src/cni/skel.js';
import type { NetctlApi } from '../../src/controller/api.js';
import type { ErrorClass } from '../../src/errors.js';
import { buildApiServer } from '../../src/server/api.js';
import { httpStatus } from '../../src/server/errors.js';
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
  type Outcome,
  rawHttp,
  resolveIds,
} from '../helpers/fuzz-harness.js';
import { apiWorld } from '../helpers/fuzz-world.js';
import {
  ALMOST_CIDRS,
  bridgeOptions,
  hostileBody,
  hostileFiles,
  hostileString,
  hostileValue,
  mutatedPayload,
  type Payload,
  parsePayload,
} from '../helpers/hostile-input.js';
import { zodArbitrary } from '../helpers/zod-arbitrary.js';
import { recordFigures } from './figures.js';

/** A route as the API registers it. */
interface Route {
  method: string;
  url: string;
  body?: z.ZodType;
}

/** Every route of the REST API (and POST /v1/cni), with its body schema, from the real server. */
async function apiRoutes(): Promise<Route[]> {
  const app = buildApiServer({} as NetctlApi, { cni: {} as CniBackend, logger: false });
  const routes: Route[] = [];
  app.addHook('onRoute', (r) => {
    for (const method of [r.method].flat()) {
      if (method === 'HEAD') continue;
      routes.push({ method, url: r.url, ...(r.schema?.body ? { body: r.schema.body as z.ZodType } : {}) });
    }
  });
  await app.ready();
  await app.close();
  return routes;
}

interface RestCall {
  method: string;
  /** Percent-encoded request target. */
  path: string;
  payload?: Payload;
  contentType?: string;
  /** The route it was made for, `METHOD /url` (undefined: an odd request, any route or none). */
  route?: string;
}

const PID_PLACEHOLDER = -7_777_777;
/** How often each route is picked (1 if not named): the ones that make and join things, most. */
const WEIGHTS: Record<string, number> = {
  'POST /v1/networks': 6,
  'POST /v1/sandboxes': 5,
  'POST /v1/networks/:ref/connect': 6,
  'POST /v1/networks/:ref/disconnect': 3,
  'DELETE /v1/networks/:ref': 2,
  'DELETE /v1/sandboxes/:ref': 2,
  'PUT /v1/sandboxes/:ref/pid': 2,
  'POST /v1/cni': 2,
};
const CLASSES: ErrorClass[] = ['badRequest', 'notFound', 'conflict', 'unavailable', 'internal'];

const enc = (s: string) => {
  try {
    return encodeURIComponent(s);
  } catch {
    return '%ED%A0%80'; // a lone surrogate: invalid UTF-8, percent-encoded
  }
};

it('REST API: fuzzed and mutated bodies, refs and content types never get a 5xx, a hang or a change when refused', async () => {
  const { daemon, socket, stateDir, watch } = await fuzzedDaemon();
  const files = hostileFiles();
  let sacrificial: ChildProcess | undefined;
  let inputs = 0;
  try {
    // ------------------------------------------------------------ the world
    const world = await apiWorld(daemon.api, stateDir);
    const { ids, netnsPaths, refs, restore } = world;
    const named = [...world.networks, ...world.sandboxes];

    // ------------------------------------------------------------ the pid a PUT may record: our own child's
    const livePid = () => {
      if (!sacrificial || sacrificial.exitCode !== null || sacrificial.signalCode !== null) {
        sacrificial = spawn('sleep', ['3600'], { stdio: 'ignore' });
      }
      return sacrificial.pid as number;
    };
    const isPidRoute = (c: RestCall) => c.route === 'PUT /v1/sandboxes/:ref/pid';
    /** The pid a PUT would record, if the body has one the schema takes. */
    const pidIn = (payload: Payload): number | undefined => {
      const pid = (parsePayload(payload)?.json as { pid?: unknown } | undefined)?.pid;
      return typeof pid === 'number' && Number.isInteger(pid) && pid >= 1 && pid <= 2 ** 22 ? pid : undefined;
    };

    // ------------------------------------------------------------ arbitraries
    const extra = [...files.paths, ...refs, ...netnsPaths];
    const values = hostileValue(extra);
    const subnets = fc.constantFrom(
      '10.77.0.0/24',
      '10.77.0.128/25',
      '10.78.0.0/16',
      '10.81.0.0/24',
      '10.82.3.0/24',
      '192.168.77.0/24',
      'fd77:1::/64',
      'fd77:2::/64',
      ...ALMOST_CIDRS,
    );
    const addresses = fc.constantFrom(
      '10.77.0.2',
      '10.77.0.9',
      '10.77.0.0',
      '10.77.0.255',
      '10.78.0.5',
      '10.81.0.1',
      'fd77:1::1',
    );
    const options = bridgeOptions(['fzbr0']);
    const keys: Record<string, fc.Arbitrary<unknown>> = {
      name: fc.oneof(fc.constantFrom(...named), fc.stringMatching(/^fz-[a-z0-9]{1,6}$/)),
      network: fc.constantFrom(...refs),
      sandbox: fc.constantFrom(...refs),
      subnet: subnets,
      ipRange: subnets,
      gateway: addresses,
      ipv4: addresses,
      hostIp: fc.constantFrom('127.0.0.1', '0.0.0.0', '10.77.0.1', '::1'),
      hostPort: fc.constantFrom(18080, 18081, 18090, 1, 65535),
      key: fc.constantFrom(...files.paths, ...netnsPaths),
      netnsOf: fc.constantFrom('host', 'container:fzsb', 'container:fzsb2', 'container:missing'),
      options,
      driver: fc.constantFrom('bridge', 'bridge', 'host', 'none', 'overlay', 'nope'),
      pid: fc.constant(PID_PLACEHOLDER),
      ifname: fc.constantFrom('eth0', 'eth1', 'lo', 'x'.repeat(15)),
      plugin: fc.constantFrom('netctl-cni', 'netctl-ipam'),
      env: fc.record(
        {
          CNI_COMMAND: fc.constantFrom(...VERBS),
          CNI_CONTAINERID: fc.constantFrom('fzrest1', 'fzrest2'),
          CNI_NETNS: fc.constantFrom(...netnsPaths, ...files.paths),
          CNI_IFNAME: fc.constantFrom('eth0', 'eth5'),
          CNI_PATH: fc.constant('/opt/cni/bin'),
        },
        { requiredKeys: ['CNI_COMMAND'] },
      ),
      config: fc
        .record({
          cniVersion: fc.constantFrom('1.0.0', '1.1.0', '0.4.0'),
          name: fc.constantFrom('fzbase', 'fzother', 'fzcni'),
          type: fc.constant('netctl-cni'),
        })
        .map((c) => JSON.stringify(c)),
    };
    /** Where a property's name is not enough. */
    const paths: Record<string, fc.Arbitrary<unknown>> = {
      'ipam.driver': fc.constantFrom('default', 'netctl', 'nope'),
      'ipam.options': fc.constantFrom({}, { 'netctl.name': 'fzbase' }),
      name: fc.oneof(fc.constantFrom(...named), fc.stringMatching(/^fz-[a-z0-9]{1,6}$/)),
    };
    const routes = await apiRoutes();
    const routeOf = new Map(routes.map((r) => [`${r.method} ${r.url}`, r]));
    const pathOf = (route: Route, ref: string, query: string) =>
      `${route.url.replace(':ref', enc(ref))}${query}`;
    const refArb = fc.oneof(
      { weight: 5, arbitrary: fc.constantFrom(...refs) },
      { weight: 2, arbitrary: hostileString(extra) },
    );
    const queryArb = fc.oneof(
      { weight: 3, arbitrary: fc.constant('') },
      { weight: 2, arbitrary: fc.constantFrom(...refs).map((r) => `?sandbox=${enc(r)}`) },
      { weight: 1, arbitrary: hostileString().map((s) => `?sandbox=${enc(s)}&x=${enc(s)}`) },
    );
    const contentTypeArb = fc.oneof(
      { weight: 8, arbitrary: fc.constant('application/json') },
      {
        weight: 2,
        arbitrary: fc.constantFrom<string | undefined>(
          undefined,
          'text/plain',
          'application/x-www-form-urlencoded',
          'application/json; charset=latin1',
          'multipart/form-data; boundary=x',
          'a/b/c;;',
          '',
        ),
      },
    );
    const bodyOf = (route: Route, mutate: boolean): fc.Arbitrary<Payload> => {
      if (!route.body) return mutate ? hostileBody(values) : fc.constant(undefined);
      const valid = zodArbitrary(route.body, { keys, paths, presence: 0.25 });
      return mutate ? mutatedPayload(valid, values) : valid.map((v) => JSON.stringify(v));
    };
    const routeCall = (mutate: boolean): fc.Arbitrary<RestCall> =>
      fc
        .oneof(
          ...routes.map((r) => ({ arbitrary: fc.constant(r), weight: WEIGHTS[`${r.method} ${r.url}`] ?? 1 })),
        )
        .chain((route) =>
          fc.record({
            route: fc.constant(`${route.method} ${route.url}`),
            method: fc.constant(route.method),
            path: fc
              .tuple(refArb, route.url.endsWith('/check') ? queryArb : fc.constant(''))
              .map(([r, q]) => pathOf(route, r, q)),
            payload: bodyOf(route, mutate),
            contentType: mutate ? contentTypeArb : fc.constant('application/json'),
          }),
        );
    /** Methods and paths no route has, or has another way. */
    const oddCall: fc.Arbitrary<RestCall> = fc.record({
      method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'),
      path: fc.oneof(
        fc.constantFrom(
          '/',
          '/v1',
          '/v1/',
          '/v2/networks',
          '/v1/networks/',
          '/v1//networks',
          '/v1/networks/%00',
          '/v1/networks/a%2Fb/connect',
          '/v1/sandboxes/%2e%2e',
          '/v1/networks?ref=x',
          '/v1/gc/x',
          `/v1/networks/${'a'.repeat(5000)}`,
        ),
        hostileString().map((s) => `/v1/networks/${enc(s)}/${enc(s)}`),
      ),
      payload: hostileBody(values),
      contentType: contentTypeArb,
    });
    const callArb = callMix(routeCall, oddCall);

    /** What the call may do, as far as the route's schema tells. */
    const expectation = (c: RestCall): Expectation => {
      const route = c.route ? routeOf.get(c.route) : undefined;
      if (!route) return c.method === 'GET' ? 'nothing' : 'anything';
      if (route.method === 'GET') return 'nothing';
      if (route.body && c.payload) {
        // The pid placeholder becomes a live pid when sent: judge the body as it will be.
        const parsed = parsePayload(c.payload.replaceAll(String(PID_PLACEHOLDER), '1'));
        if (!parsed || !route.body.safeParse(parsed.json).success) return 'refusal';
        if (route.url === '/v1/gc' && (parsed.json as { dryRun?: unknown })?.dryRun === true)
          return 'nothing';
      }
      return 'anything';
    };

    // ------------------------------------------------------------ one call, and what its answer must be
    const describe = (c: RestCall) =>
      `${c.method} ${brief(c.path, 160)} ${c.contentType === undefined ? '(no content type)' : `(${brief(c.contentType, 40)})`} ${c.payload === undefined ? '(no body)' : brief(c.payload, 400)}`;

    const send = async (call: RestCall): Promise<Outcome> => {
      const c = {
        ...call,
        path: resolveIds(call.path, ids),
        payload: call.payload === undefined ? undefined : resolveIds(call.payload, ids),
      };
      let payload = c.payload;
      if (isPidRoute(c)) {
        const live = livePid();
        payload = payload?.replaceAll(String(PID_PLACEHOLDER), String(live));
        // Never anybody else's process: the sandbox's removal would SIGKILL it.
        const pid = pidIn(payload);
        if (pid !== undefined && pid !== live) return { accepted: false };
      }
      inputs++;
      const label = describe({ ...c, payload });
      const a = await watch.promptly(label, () =>
        rawHttp(socket, {
          method: c.method,
          path: c.path,
          payload,
          contentType: c.contentType,
          timeoutMs: CALL_DEADLINE_MS + 1000,
        }),
      );
      return judge(label, c, a);
    };

    const judge = (label: string, c: RestCall, a: Answer): Outcome => {
      const said = a.json as { message?: unknown; msg?: unknown } | undefined;
      const cniExit = a.headers['netctl-cni-exit'];
      countOutcome(
        `${c.route ?? 'odd'} ${a.status}${cniExit ? ` exit ${cniExit}` : ''}`,
        said?.message ?? said?.msg,
      );
      const fail = (why: string) => {
        throw new Error(`${label}: ${why}: ${a.status} ${brief(a.text, 1000)}`);
      };
      if (a.status >= 500) fail('a 5xx');
      if (a.status >= 200 && a.status < 300) {
        if (a.text && a.json === undefined) fail('a success whose body is not JSON');
        if (c.route !== 'POST /v1/cni') return { accepted: true };
        // The forwarded CNI call: 200 whatever the plugin said; its exit status says.
        const exit = Number(cniExit);
        const out = a.json as { code?: unknown } | undefined;
        if (![0, 1, 2, 3, 4, 5, 6, 7, 11, 50, 51, 100, 102].includes(exit)) fail(`CNI exit status ${exit}`);
        if (exit !== 0 && out?.code !== exit)
          fail(`CNI error JSON whose code is not the exit status ${exit}`);
        return { accepted: exit === 0 };
      }
      const body = a.json as { code?: unknown; message?: unknown; class?: unknown } | undefined;
      if (a.status < 400) fail('neither a success nor an error');
      if (typeof body?.code !== 'string' || !/^NETCTL_[A-Z_]+$/.test(body.code))
        fail('an error body without a registry code');
      if (typeof body?.message !== 'string' || body.message === '') fail('an error body without a message');
      if (!CLASSES.includes(body?.class as ErrorClass)) fail('an error body without a class');
      const status = httpStatus(body?.code as string, body?.class as ErrorClass);
      if (a.status !== status) fail(`status ${a.status} for class ${String(body?.class)}`);
      return { accepted: false };
    };

    // ------------------------------------------------------------ the property
    await fuzzGuarded({
      label: 'rest',
      runs: 60,
      maxCalls: 8,
      calls: callArb,
      stateDir,
      daemonPid: daemon.pid,
      carries: (c) => [c.path, c.payload, parsePayload(c.payload)?.json],
      expectation,
      send,
      restore,
      describe,
    });
    await watch.expectAlive();
    if (watch.pid !== daemon.pid) throw new Error('the daemon was replaced');
  } finally {
    recordFigures({ inputs });
    process.stdout.write(fuzzReport('rest'));
    sacrificial?.kill('SIGKILL');
    files.remove();
  }
}, 300_000);
