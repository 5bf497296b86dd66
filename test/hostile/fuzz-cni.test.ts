/**
 * Fuzzing the CNI plugins (issue 11, "Do no harm", tests (c)): the
 * netctl-cni shim executed as a runtime executes it (by path, as
 * netctl-cni or netctl-ipam, the configuration on stdin and CNI_* in the
 * environment), forwarding to a real `netctl daemon`. Configurations are
 * generated from the plugin's own zod schema (netctlCniConfigSchema,
 * netctlIpamConfigSchema) and mutated from valid ones; environments from
 * the dispatcher's env table (ENV_TABLE: which verb needs which variable)
 * and mutated (dropped, hostile, unknown variables, NETCTL_CNI_TIMEOUT).
 * The world: a netctl network with one container attached (netctl-cni),
 * an address held through netctl-ipam, and a second, empty container netns.
 *
 * Each call must end within the deadline with a spec exit status (1-7, 11,
 * 50, 51, 100, 102; never 101, "internal", never a signal) and print JSON
 * (the error's code being the exit status); 11 only when the fuzz set
 * NETCTL_CNI_TIMEOUT. GET /v1/health must keep answering, the daemon must
 * log no error, a refused call must leave the store and the kernel as they
 * were, and the daemon must be the same healthy process at the end.
 */
import fc from 'fast-check';
import { it } from 'vitest';
import { netctlCniConfigSchema } from '../../src/cni/config.js';
import { netctlIpamConfigSchema } from '../../src/cni/ipam.js';
import { ENV_TABLE, MAX_CONFIG_BYTES, VERBS, type Verb } from '../../src/cni/skel.js';
import { SUPPORTED_VERSIONS, versionAtLeast } from '../../src/cni/types.js';
import { createNetns, deleteNetns } from '../../src/kernel/index.js';
import {
  brief,
  CALL_DEADLINE_MS,
  countOutcome,
  type Expectation,
  fuzzedDaemon,
  fuzzGuarded,
  fuzzReport,
  ipamSnapshot,
  type Outcome,
} from '../helpers/fuzz-harness.js';
import { StoreBaseline } from '../helpers/fuzz-world.js';
import {
  ALMOST_CIDRS,
  hostileFiles,
  hostileString,
  hostileValue,
  mutatedPayload,
  type Payload,
  parsePayload,
} from '../helpers/hostile-input.js';
import { killSpawned, spawnCollected } from '../helpers/spawned.js';
import { zodArbitrary } from '../helpers/zod-arbitrary.js';
import { cniHost, ours } from '../privileged/cni/fixture.js';
import { uniqueName } from '../privileged/harness.js';
import { recordFigures } from './figures.js';

type Plugin = 'netctl-cni' | 'netctl-ipam';

interface CniRequest {
  plugin: Plugin;
  /** CNI_* (and NETCTL_CNI_TIMEOUT) as the runtime sets them. */
  env: Record<string, string>;
  stdin: Payload;
}

/** Exit statuses the spec and docs/cni.md allow (101 is netctl's internal error: never). */
const SPEC_CODES = new Set([1, 2, 3, 4, 5, 6, 7, 11, 50, 51, 100, 102]);
const SCHEMAS = { 'netctl-cni': netctlCniConfigSchema, 'netctl-ipam': netctlIpamConfigSchema };
const CONTAINER_ID = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
/** The verbs' minimum configuration versions (docs/cni.md). */
const MINIMUM: Partial<Record<Verb, string>> = { CHECK: '0.4.0', STATUS: '1.1.0', GC: '1.1.0' };

it('CNI shim: fuzzed and mutated configurations and environments exit with a spec code, never 101, never a hang or a change when refused', async () => {
  const host = cniHost();
  const { daemon, stateDir, watch } = await fuzzedDaemon(host.dir);
  const files = hostileFiles();
  const netnsNames = [uniqueName('cn'), uniqueName('cn')];
  const [attached, fresh] = netnsNames.map((n) => createNetns(n)) as [string, string];
  let inputs = 0;
  try {
    const api = daemon.api;
    /** Exec the plugin as a runtime does: by path, exactly this environment (and the host's PATH and socket). */
    const exec = async (plugin: Plugin, env: Record<string, string>, stdin: Payload) => {
      const r = await spawnCollected(ours(host, plugin), [], {
        env: { ...host.env, ...env },
        input: stdin ?? '',
      });
      let json: unknown;
      try {
        json = r.stdout.trim() ? JSON.parse(r.stdout) : undefined;
      } catch {
        json = undefined;
      }
      return { code: r.status, stdout: r.stdout, stderr: r.stderr, json };
    };
    const must = async (plugin: Plugin, env: Record<string, string>, config: unknown) => {
      const out = await exec(plugin, env, JSON.stringify(config));
      if (out.code !== 0)
        throw new Error(`${plugin} ${brief(env)}: exit ${out.code} ${out.stdout} ${out.stderr}`);
      return out.json;
    };
    const base = { cniVersion: '1.0.0', name: 'fzcni', type: 'netctl-cni' };
    const ipamBase = {
      cniVersion: '1.0.0',
      name: 'fzipam',
      type: 'bridge',
      ipam: { type: 'netctl-ipam', subnet: '10.98.0.0/24' },
    };
    const attach = {
      CNI_CONTAINERID: 'fzc1',
      CNI_NETNS: attached,
      CNI_IFNAME: 'eth0',
      CNI_PATH: host.cniPath,
    };

    // ------------------------------------------------------------ the world
    let added: unknown;
    const build = async () => {
      await api.createNetwork({ name: 'fzcni', ipam: { config: [{ subnet: '10.99.0.0/24' }] } });
      added = await must('netctl-cni', { CNI_COMMAND: 'ADD', ...attach }, base);
      await must('netctl-ipam', { CNI_COMMAND: 'ADD', ...attach }, ipamBase);
    };
    const teardown = async () => {
      for (const s of await api.listSandboxes()) await api.deleteSandbox(s.id);
      for (const n of await api.listNetworks()) await api.deleteNetwork(n.id);
      await releaseIpam(() => true);
    };
    /** Give back netctl-ipam's addresses whose attachment `drop` names, by the plugin's own DEL. */
    const releaseIpam = async (drop: (owner: string) => boolean) => {
      const { pools, allocations } = await ipamSnapshot(stateDir);
      for (const a of allocations) {
        const pool = pools.find((p) => p.poolId === a.poolId);
        const attachment = /^cni:([^/]+)\/(.+)$/.exec(a.owner);
        if (!pool?.owner?.startsWith('cni-ipam:') || !attachment || !drop(a.owner)) continue;
        const config = {
          cniVersion: '1.0.0',
          name: pool.owner.slice('cni-ipam:'.length),
          ipam: { type: 'netctl-ipam', subnet: pool.subnet },
        };
        await must(
          'netctl-ipam',
          {
            CNI_COMMAND: 'DEL',
            CNI_CONTAINERID: attachment[1] as string,
            CNI_IFNAME: attachment[2] as string,
          },
          config,
        );
      }
    };
    await build();
    const baseline = new StoreBaseline(stateDir);
    await baseline.take();

    const restore = async () => {
      for (const s of await api.listSandboxes()) {
        if (s.name !== 'cni-fzc1') await api.deleteSandbox(s.id);
        else
          for (const e of (await api.inspectSandbox(s.id)).endpoints)
            if (!(e.networkName === 'fzcni' && e.ifname === 'eth0')) await api.disconnect(e.networkId, s.id);
      }
      for (const n of await api.listNetworks()) if (n.name !== 'fzcni') await api.deleteNetwork(n.id);
      await releaseIpam((owner) => owner !== 'cni:fzc1/eth0');
      if (await baseline.intact()) return;
      await teardown();
      await build();
      await baseline.take();
    };

    // ------------------------------------------------------------ arbitraries
    const extra = [...files.paths, attached, fresh, 'fzc1', 'fzcni'];
    const values = hostileValue(extra);
    const subnets = fc.oneof(
      {
        weight: 4,
        arbitrary: fc.constantFrom(
          '10.99.0.0/24',
          '10.97.0.0/24',
          '10.96.0.0/24',
          '10.98.0.0/24',
          '10.99.0.0/25',
          'fd99::/64',
        ),
      },
      { weight: 1, arbitrary: fc.constantFrom(...ALMOST_CIDRS) },
    );
    const keys: Record<string, fc.Arbitrary<unknown>> = {
      cniVersion: fc.constantFrom(...SUPPORTED_VERSIONS, '0.2.0', '1.2.0'),
      name: fc.constantFrom('fzcni', 'fzipam', 'fznew', 'fznew2'),
      network: fc.constantFrom('fzcni', 'fznew', 'missing'),
      type: fc.constantFrom('netctl-cni', 'netctl-ipam', 'netctl', 'host-local', 'bridge'),
      subnet: subnets,
      ipRange: subnets,
      dst: subnets,
      gateway: fc.constantFrom('10.99.0.1', '10.97.0.1', '10.99.0.200', '10.98.0.1'),
      address: fc.constantFrom('10.99.0.2/24', '10.99.0.77/24', '10.97.0.5/24'),
      prevResult: fc.constant(undefined).map(() => added),
      'cni.dev/valid-attachments': fc.constantFrom(
        [{ containerID: 'fzc1', ifname: 'eth0' }],
        [],
        [{ containerID: 'fzc2', ifname: 'eth0' }],
      ),
      hostPort: fc.constantFrom(18084, 18085, 1, 65535),
      ips: fc.constantFrom(
        ['10.99.0.60/24'],
        ['10.99.0.2/24'],
        ['10.99.0.61'],
        ['10.99.0.62/24', '10.99.0.63/24'],
        ['fd99::5/64'],
      ),
      mac: fc.constantFrom('02:42:0a:63:00:50', 'ff:ff:ff:ff:ff:ff', '02:42:0a:63:00:02'),
      mtu: fc.constantFrom(68, 1500, 9000, 65535),
      bridge: fc.constantFrom('fzcnibr', 'lo', '.', 'x'.repeat(16)),
      options: fc.constantFrom(
        {},
        { 'com.docker.network.bridge.enable_icc': 'false' },
        { 'com.docker.network.driver.mtu': '70000' },
      ),
    };
    /** What a runtime would really send: the spec's fields, and a few of the plugin's, right or nearly. */
    const realistic = (plugin: Plugin): fc.Arbitrary<unknown> => {
      const model: Record<string, fc.Arbitrary<unknown>> = {
        cniVersion: fc.constantFrom('1.0.0', '1.1.0', '1.1.0', '0.4.0'),
        name:
          plugin === 'netctl-cni'
            ? fc.constantFrom('fzcni', 'fzcni', 'fznew')
            : fc.constantFrom('fzipam', 'fzipam2'),
        type: fc.constant(plugin === 'netctl-cni' ? 'netctl-cni' : 'bridge'),
        runtimeConfig: fc.record(
          {
            portMappings: fc.array(
              fc.record({
                hostPort: keys.hostPort as fc.Arbitrary<number>,
                containerPort: fc.constantFrom(80, 443),
                protocol: fc.constantFrom('tcp', 'udp', 'TCP', 'icmp'),
              }),
              { maxLength: 2 },
            ),
            ips: keys.ips as fc.Arbitrary<string[]>,
            mac: keys.mac as fc.Arbitrary<string>,
          },
          { requiredKeys: [] },
        ),
        prevResult: keys.prevResult as fc.Arbitrary<unknown>,
        'cni.dev/valid-attachments': keys['cni.dev/valid-attachments'] as fc.Arbitrary<unknown>,
      };
      if (plugin === 'netctl-cni') {
        model.network = fc.constantFrom('fzcni', 'fznew');
        model.subnet = subnets;
      } else model.ipam = fc.record({ type: fc.constant('netctl-ipam'), subnet: subnets });
      return fc.record(model, {
        requiredKeys: ['cniVersion', 'name', 'type', ...(plugin === 'netctl-ipam' ? ['ipam'] : [])],
      });
    };
    const configOf = (plugin: Plugin) =>
      fc.oneof(
        { weight: 3, arbitrary: realistic(plugin) },
        { weight: 2, arbitrary: zodArbitrary(SCHEMAS[plugin], { keys }) },
      );
    const containerIds = fc.oneof(
      fc.constantFrom('fzc1', 'fzc2', 'fzc3'),
      fc.stringMatching(CONTAINER_ID).filter((s) => s.length < 80),
    );
    const good: Record<string, fc.Arbitrary<string>> = {
      CNI_CONTAINERID: containerIds,
      CNI_NETNS: fc.constantFrom(attached, fresh, attached, fresh, ...files.paths),
      CNI_IFNAME: fc.constantFrom('eth0', 'eth1', 'net1', 'x'.repeat(15)),
      CNI_ARGS: fc.constantFrom(
        '',
        'IgnoreUnknown=1',
        'IP=10.99.0.50',
        'MAC=02:42:0a:63:00:51',
        'IgnoreUnknown=1;K8S_POD_NAME=x',
        'FOO=bar',
      ),
      CNI_PATH: fc.constant(host.cniPath),
    };
    /** An environment for verb as the env table has it: what the verb needs, and some of what it reads. */
    const envOf = (verb: Verb): fc.Arbitrary<Record<string, string>> => {
      const model: Record<string, fc.Arbitrary<string>> = { CNI_COMMAND: fc.constant(verb) };
      const required = ['CNI_COMMAND'];
      for (const row of ENV_TABLE) {
        if (row.name === 'CNI_COMMAND') continue;
        model[row.name] = good[row.name] ?? hostileString();
        if (row.requiredFor.includes(verb)) required.push(row.name);
      }
      return fc.record(model, { requiredKeys: required });
    };
    const envMutation = fc.oneof(
      fc.record({
        kind: fc.constant('drop' as const),
        name: fc.constantFrom(...ENV_TABLE.map((r) => r.name)),
      }),
      fc.record({
        kind: fc.constant('set' as const),
        name: fc.constantFrom(...ENV_TABLE.map((r) => r.name), 'CNI_FOO', 'NETCTL_CNI_TIMEOUT'),
        value: hostileString(extra).filter((s) => s.length < 100_000),
      }),
      fc.record({
        kind: fc.constant('set' as const),
        name: fc.constant('NETCTL_CNI_TIMEOUT'),
        value: fc.constantFrom(
          '0',
          '-1',
          '0.5',
          '30',
          '86400',
          '86401',
          'abc',
          '1e3',
          '.5',
          '5.',
          '0x10',
          ' 3',
          '',
        ),
      }),
      fc.record({
        kind: fc.constant('set' as const),
        name: fc.constant('CNI_COMMAND'),
        value: fc.constantFrom('add', 'ADD ', 'DELETE', 'VERSION\n', ''),
      }),
    );
    const requestArb = (mutate: boolean): fc.Arbitrary<CniRequest> =>
      fc
        .tuple(
          fc.constantFrom<Plugin>('netctl-cni', 'netctl-cni', 'netctl-cni', 'netctl-ipam'),
          fc.constantFrom(...VERBS),
        )
        .chain(([plugin, verb]) =>
          fc.record({
            plugin: fc.constant(plugin),
            env: mutate
              ? fc.tuple(envOf(verb), fc.array(envMutation, { maxLength: 2 })).map(([env, ms]) => {
                  const out = { ...env };
                  for (const m of ms) {
                    if (m.kind === 'drop') delete out[m.name];
                    else out[m.name] = m.value;
                  }
                  return out;
                })
              : envOf(verb),
            stdin: mutate
              ? mutatedPayload(configOf(plugin), values)
              : configOf(plugin).map((c) => JSON.stringify(c)),
          }),
        );
    const callArb = fc.oneof(
      { weight: 3, arbitrary: requestArb(false) },
      { weight: 7, arbitrary: requestArb(true) },
    );

    /** What the dispatcher's own checks (env table, decoding, versions, the plugin's schema) say of it. */
    const expectation = (r: CniRequest): Expectation => {
      const verb = r.env.CNI_COMMAND ?? '';
      if (!(VERBS as readonly string[]).includes(verb)) return 'refusal';
      for (const row of ENV_TABLE) {
        const value = r.env[row.name] ?? '';
        if (value === '' && (row.name === 'CNI_COMMAND' || row.requiredFor.includes(verb as Verb)))
          return 'refusal';
        if (value !== '' && row.validate && row.usedBy.includes(verb as Verb) && row.validate(value))
          return 'refusal';
      }
      if (verb === 'VERSION') return 'nothing';
      const stdin = r.stdin ?? '';
      if (Buffer.byteLength(stdin) > MAX_CONFIG_BYTES) return 'refusal';
      const config = parsePayload(stdin)?.json as Record<string, unknown> | undefined;
      if (!config || typeof config !== 'object' || Array.isArray(config)) return 'refusal';
      if (typeof config.name !== 'string' || !CONTAINER_ID.test(config.name)) return 'refusal';
      const version = config.cniVersion;
      if (typeof version !== 'string' || !(SUPPORTED_VERSIONS as readonly string[]).includes(version))
        return 'refusal';
      const minimum = MINIMUM[verb as Verb];
      if (minimum && !versionAtLeast(version, minimum)) return 'refusal';
      if (!SCHEMAS[r.plugin].safeParse(config).success) return 'refusal';
      return verb === 'CHECK' || verb === 'STATUS' ? 'nothing' : 'anything';
    };

    // ------------------------------------------------------------ one call, and what it must do
    const describe = (r: CniRequest) =>
      `${r.plugin} env=${brief(r.env, 400)} stdin=${r.stdin === undefined ? '(none)' : brief(r.stdin, 400)}`;

    const send = async (r: CniRequest): Promise<Outcome> => {
      inputs++;
      const label = describe(r);
      // A plugin still running at the deadline is stopped (and reported by promptly).
      const watchdog = setTimeout(() => void killSpawned(), CALL_DEADLINE_MS + 500);
      const out = await watch
        .promptly(label, () => exec(r.plugin, withoutNul(r.env), r.stdin))
        .finally(() => clearTimeout(watchdog));
      const fail = (why: string) => {
        throw new Error(
          `${label}: ${why}: exit ${out.code}, stdout ${brief(out.stdout, 800)}, stderr ${brief(out.stderr, 800)}`,
        );
      };
      countOutcome(
        `${r.plugin} ${r.env.CNI_COMMAND ?? '(no verb)'} exit ${out.code}`,
        (out.json as { msg?: unknown } | undefined)?.msg,
      );
      if (out.code === null) fail('killed by a signal');
      const code = out.code as number;
      if (code !== 0 && !SPEC_CODES.has(code))
        fail(code === 101 ? 'CNI error 101, internal' : 'not a spec exit status');
      const json = out.json as { code?: unknown; msg?: unknown; cniVersion?: unknown } | undefined;
      if (out.stdout.trim() && json === undefined) fail('stdout is not JSON');
      if (code !== 0) {
        if (json?.code !== code) fail('an error whose code is not the exit status');
        if (typeof json?.msg !== 'string' || json.msg === '') fail('an error without a msg');
      } else if (
        (r.env.CNI_COMMAND === 'ADD' || r.env.CNI_COMMAND === 'VERSION') &&
        typeof json?.cniVersion !== 'string'
      )
        fail('a success without its result');
      if (/Segmentation|Aborted|core dumped|\n\s+at /.test(out.stderr)) fail('a crash on stderr');
      if (code === 11) {
        if (r.env.NETCTL_CNI_TIMEOUT === undefined) fail('"try again later" from a daemon that answers');
        return { accepted: 'unknown' };
      }
      return { accepted: code === 0 };
    };

    // ------------------------------------------------------------ the property
    await fuzzGuarded({
      label: 'cni',
      runs: 30,
      maxCalls: 6,
      calls: callArb,
      stateDir,
      daemonPid: daemon.pid,
      carries: (r) => [r.env, r.stdin, parsePayload(r.stdin)?.json],
      expectation,
      send,
      restore,
      describe,
    });
    await watch.expectAlive();
  } finally {
    recordFigures({ inputs });
    process.stdout.write(fuzzReport('cni'));
    files.remove();
    for (const n of netnsNames) deleteNetns(n);
  }
}, 300_000);

/** An environment cannot carry NUL: exec would refuse it before the plugin runs. */
function withoutNul(env: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v.replaceAll('\u0000', '')]));
}
