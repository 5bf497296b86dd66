/**
 * Fuzzing the command line (issue 11, "Do no harm", tests (c)): `runCli`
 * in-process, its API the real `netctl daemon` over its socket. Command
 * lines are made from the program itself — its verbs, their options (with
 * their choices) and arguments, read from commander — with values
 * generated from the zod schemas the CLI checks them with (names, CIDRs,
 * addresses, port mappings, hostnames, labels), then mutated token by
 * token: dropped, doubled, swapped, replaced by hostile strings or near
 * misses, flags without their values, `--`, `--help`. The world: two
 * networks, a sandbox alone and one connected with a published port.
 *
 * Each command line must end within the deadline with an exit status 0-5
 * (1 only from `doctor`, whose failed check it means, or `gc`, whose
 * failed action it means), print no stack trace, and name its error with
 * `netctl: ` when it fails. GET /v1/health must keep answering, the daemon
 * must log no error, a refused command must leave the store and the kernel
 * as they were (the snapshot before it is taken when it first asks the
 * daemon to change something), and the daemon must be the same healthy
 * process at the end. `rm` of several names, `gc` and `repair` go on past
 * a failure (docs/cli.md): what they did before it counts as accepted.
 *
 * Not run: `daemon` (it would serve sockets from this process) and `cni`
 * (it installs into /opt/cni/bin and /etc/cni/net.d, on the host's disk);
 * the commands `run` and `sandbox exec` would start are never started (a
 * stand-in netctl-exec exits 0).
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import type { Argument, Command, Option } from 'commander';
import fc from 'fast-check';
import { it } from 'vitest';
import type { z } from 'zod';
import { Cli } from '../../src/cli/cli.js';
import { HttpApi } from '../../src/cli/client.js';
import type { CliContext } from '../../src/cli/context.js';
import { buildProgram, runCli } from '../../src/cli/program.js';
import type { NetctlApi } from '../../src/controller/api.js';
import {
  cidrSchema,
  createNetworkSchema,
  createSandboxSchema,
  ipSchema,
  nameSchema,
  portMappingSchema,
} from '../../src/core/schemas.js';
import { log } from '../../src/log.js';
import {
  brief,
  CALL_DEADLINE_MS,
  countOutcome,
  fuzzedDaemon,
  fuzzGuarded,
  fuzzReport,
  type Outcome,
  resolveIds,
} from '../helpers/fuzz-harness.js';
import { apiWorld } from '../helpers/fuzz-world.js';
import { ALMOST_CIDRS, ALMOST_IPS, hostileFiles, hostileString } from '../helpers/hostile-input.js';
import { zodArbitrary } from '../helpers/zod-arbitrary.js';
import { recordFigures } from './figures.js';

/** Verbs never run here (see the file comment). */
const NOT_RUN = new Set(['daemon', 'cni', 'help']);
/** NetctlApi calls that may change something (gc only without dryRun). */
const CHANGING = new Set([
  'createNetwork',
  'deleteNetwork',
  'pruneNetworks',
  'createSandbox',
  'deleteSandbox',
  'setSandboxPid',
  'connect',
  'disconnect',
  'gc',
  'repair',
]);

interface Leaf {
  path: string[];
  options: readonly Option[];
  args: readonly Argument[];
}

/** Every runnable command of the program, with its options and arguments, as commander has them. */
function leaves(command: Command, path: string[] = []): Leaf[] {
  const subs = command.commands.filter((c) => !NOT_RUN.has(c.name()));
  if (!subs.length)
    return path.length ? [{ path, options: command.options, args: command.registeredArguments }] : [];
  return subs.flatMap((c) => leaves(c, [...path, c.name()]));
}

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _encoding: BufferEncoding, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

type Argv = string[];

it('CLI: fuzzed and mutated command lines exit 0-5, print no stack trace, never hang and change nothing when refused', async () => {
  const { daemon, socket, stateDir, watch } = await fuzzedDaemon();
  const files = hostileFiles();
  const runRoot = mkdtempSync(join(tmpdir(), 'netctl-fuzz-cli-'));
  const exec = join(runRoot, 'netctl-exec');
  writeFileSync(exec, '#!/bin/sh\n# stands in for netctl-exec: starts nothing\nexit 0\n');
  chmodSync(exec, 0o755);
  const logLevel = log.level;
  let inputs = 0;
  try {
    // ------------------------------------------------------------ the world (the REST fuzz's)
    const world = await apiWorld(daemon.api, stateDir);
    const { ids, netnsPaths, restore } = world;

    // ------------------------------------------------------------ values, from the schemas the CLI checks with
    const str = (schema: z.ZodType, known: string[] = []) =>
      fc.oneof(
        { weight: 3, arbitrary: known.length ? fc.constantFrom(...known) : zodArbitrary(schema).map(String) },
        { weight: 1, arbitrary: zodArbitrary(schema).map(String) },
      );
    const subnets = str(cidrSchema, [
      '10.77.0.0/24',
      '10.81.0.0/24',
      '10.82.0.0/24',
      'fd81::/64',
      '10.77.0.128/25',
    ]);
    const addresses = str(ipSchema, ['10.77.0.9', '10.77.0.2', '10.81.0.1', '10.81.0.9', 'fd81::9']);
    const names = str(nameSchema, ['fz-a', 'fz-b', 'fzbase', 'fzsb']);
    const refs = fc.constantFrom(...world.refs);
    const publish = zodArbitrary(portMappingSchema, {
      keys: {
        hostPort: fc.constantFrom(18080, 18086, 18087),
        hostIp: fc.constantFrom('127.0.0.1', '0.0.0.0'),
      },
    }).map((v) => {
      const p = v as {
        proto?: string;
        hostIp?: string;
        hostPort: number;
        hostPortEnd?: number;
        containerPort: number;
        containerPortEnd?: number;
      };
      const ip = p.hostIp ? `${p.hostIp.includes(':') ? `[${p.hostIp}]` : p.hostIp}:` : '';
      const range = (a: number, b?: number) => (b === undefined ? `${a}` : `${a}-${b}`);
      return `${ip}${range(p.hostPort, p.hostPortEnd)}:${range(p.containerPort, p.containerPortEnd)}${p.proto ? `/${p.proto}` : ''}`;
    });
    const keyValue = fc
      .tuple(
        fc.constantFrom(
          'com.docker.network.bridge.enable_icc',
          'com.docker.network.driver.mtu',
          'com.docker.network.bridge.name',
          'role',
          'k',
        ),
        fc.constantFrom('true', 'false', '1500', 'fzclibr', 'x', ''),
      )
      .map(([k, v]) => `${k}=${v}`);
    /** A value for an option, by its long name (the schema its parser checks with), or its choices. */
    const optionValue = (o: Option): fc.Arbitrary<string> => {
      // Not debug or trace: --log-level sets this process's logger, which would print every error's stack.
      if (o.long === '--log-level') return fc.constantFrom('fatal', 'error', 'warn', 'silent', 'verbose');
      if (o.argChoices?.length) return fc.constantFrom(...o.argChoices);
      switch (o.long) {
        case '--subnet':
        case '--ip-range':
          return subnets;
        case '--gateway':
        case '--ip':
        case '--ip6':
          return addresses;
        case '--aux-address':
          return fc.tuple(names, addresses).map(([n, a]) => `${n}=${a}`);
        case '--opt':
        case '--label':
          return keyValue;
        case '--publish':
          return publish;
        case '--hostname':
          return str(createSandboxSchema.shape.hostname.unwrap() as z.ZodType);
        case '--netns':
          return fc.constantFrom(...netnsPaths, ...files.paths);
        case '--driver':
          return str(createNetworkSchema.shape.driver.unwrap() as z.ZodType, [
            'bridge',
            'host',
            'none',
            'overlay',
          ]);
        case '--name':
        case '--alias':
          return names;
        case '--network':
          return fc.constantFrom(...world.networks, 'none', 'host', 'container:fzsb', 'missing');
        case '--timeout':
          return fc.constantFrom('10', '30', '0.5', '0', '-1', 'abc', '86401', '1e3');
        case '--socket':
          return fc.constantFrom(socket, '/nonexistent.sock', files.fifo);
        case '--kv':
          return fc.constantFrom('lmdb:///nonexistent', 'redis://127.0.0.1:1/0', 'nope://x');
        default:
          return hostileString();
      }
    };
    /** A value for a positional argument, by its command and name. */
    const argumentOf = (leaf: Leaf, a: Argument): fc.Arbitrary<string[]> => {
      const n = a.name();
      if (n === 'command') return fc.constant(['true']);
      const one =
        n === 'name'
          ? names
          : leaf.path[0] === 'network' && n === 'network'
            ? refs
            : n === 'sandbox'
              ? refs
              : refs;
      if (a.variadic) return fc.array(one, { minLength: a.required ? 1 : 0, maxLength: 3 });
      return a.required
        ? one.map((v) => [v])
        : fc.option(
            one.map((v) => [v]),
            { nil: [] as string[] },
          );
    };

    const program = buildProgram(
      new Cli({ stdout: new Capture(), stderr: new Capture() } as unknown as CliContext),
    );
    const commands = leaves(program).filter((l) => l.path.length);
    /** The verb's own options (the global ones it repeats, hidden, come in by mutation). */
    const flagsOf = (leaf: Leaf) => leaf.options.filter((o) => !o.hidden);
    /** A command line a user could type: the verb, some options with values, the arguments. */
    const validArgv: fc.Arbitrary<Argv> = fc.constantFrom(...commands).chain((leaf) =>
      fc
        .tuple(
          fc
            .subarray([...flagsOf(leaf)], { maxLength: Math.min(4, flagsOf(leaf).length) })
            .chain((options) =>
              fc.tuple(
                ...options.map((o) =>
                  o.required || o.optional
                    ? optionValue(o).map((v) => [(o.long ?? o.short) as string, v])
                    : fc.constant([(o.long ?? o.short) as string]),
                ),
              ),
            ),
          fc.tuple(...leaf.args.map((a) => argumentOf(leaf, a))),
        )
        .map(([options, args]) => {
          const positional = args.flat();
          const command = leaf.args.some((a) => a.name() === 'command');
          // `run` and `sandbox exec`: options before the command, `--` before it.
          const tail = command ? [...positional.slice(0, -1), '--', ...positional.slice(-1)] : positional;
          return [...leaf.path, ...options.flat(), ...tail];
        }),
    );
    const allFlags = [
      ...new Set(
        commands.flatMap((l) => l.options.flatMap((o) => [o.long, o.short].filter(Boolean) as string[])),
      ),
    ];
    const tokenMutation = fc.oneof(
      fc.record({ kind: fc.constant('drop' as const), at: fc.nat() }),
      fc.record({ kind: fc.constant('double' as const), at: fc.nat() }),
      fc.record({ kind: fc.constant('swap' as const), at: fc.nat(), with: fc.nat() }),
      fc.record({
        kind: fc.constant('replace' as const),
        at: fc.nat(),
        value: hostileString([...files.paths, ...ALMOST_CIDRS, ...ALMOST_IPS]).filter(
          (s) => s.length < 100_000,
        ),
      }),
      fc.record({
        kind: fc.constant('insert' as const),
        at: fc.nat(),
        value: fc.constantFrom(
          ...allFlags,
          '--',
          '-',
          '--help',
          '-h',
          '--version',
          '-x',
          '--no-such-flag',
          '--opt=',
          '-o=',
          '-pp',
        ),
      }),
    );
    const mutatedArgv: fc.Arbitrary<Argv> = fc
      .tuple(validArgv, fc.array(tokenMutation, { minLength: 1, maxLength: 3 }))
      .map(([argv, ms]) => {
        const out = [...argv];
        for (const m of ms) {
          const i = m.at % (out.length + 1);
          if (m.kind === 'drop') out.splice(i, 1);
          else if (m.kind === 'double' && out[i] !== undefined) out.splice(i, 0, out[i] as string);
          else if (m.kind === 'swap') {
            const j = m.with % Math.max(out.length, 1);
            [out[i], out[j]] = [out[j] as string, out[i] as string];
          } else if (m.kind === 'replace') out[i] = m.value;
          else if (m.kind === 'insert') out.splice(i, 0, m.value);
        }
        return out.filter((t) => t !== undefined);
      });
    const argvArb = fc.oneof({ weight: 4, arbitrary: validArgv }, { weight: 6, arbitrary: mutatedArgv });

    // ------------------------------------------------------------ one command line
    const describe = (argv: Argv) => `netctl ${argv.map((t) => brief(t, 120)).join(' ')}`;

    const send = async (line: Argv, beforeChange: () => Promise<void>): Promise<Outcome> => {
      inputs++;
      const argv = line.map((t) => resolveIds(t, ids));
      let touched = false;
      /** Change-capable calls the daemon carried out: a command that goes on past failures may have made some. */
      let changed = 0;
      let deadlineGiven = false;
      const openApi: CliContext['openApi'] = async (options) => {
        deadlineGiven = options.timeout !== undefined;
        const http = new HttpApi(socket, Math.min(options.timeout ?? CALL_DEADLINE_MS / 1000, 30));
        // The snapshot a refusal is compared with is taken just before the first call that may change things.
        const guarded = new Proxy(http, {
          get(target, prop, receiver) {
            const value = Reflect.get(target, prop, receiver) as unknown;
            if (typeof value !== 'function') return value;
            return async (...args: unknown[]) => {
              const dry = prop === 'gc' && (args[0] as { dryRun?: boolean } | undefined)?.dryRun === true;
              const changing = CHANGING.has(String(prop)) && !dry;
              if (changing && !touched) {
                touched = true;
                await beforeChange();
              }
              const result = await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
              if (changing) changed++;
              return result;
            };
          },
        }) as NetctlApi;
        return { api: guarded, close: async () => {}, mode: 'daemon' };
      };
      const stdout = new Capture();
      const stderr = new Capture();
      const stdin = new PassThrough();
      stdin.end('');
      const label = describe(argv);
      const status = await watch.promptly(label, () =>
        runCli(argv, {
          stdout,
          stderr,
          stdin,
          interactive: false,
          color: false,
          env: {},
          openApi,
          netctlExec: exec,
          sandboxDir: (id) => join(runRoot, id),
          inheritStdio: false,
        }).finally(() => {
          log.level = logLevel; // --log-level sets this process's logger
        }),
      );
      const verb = argv.find((t) => commands.some((l) => l.path[0] === t)) ?? '(none)';
      countOutcome(`${verb} exit ${status}`, /^netctl: (.*)$/m.exec(stderr.text)?.[1]);
      const fail = (why: string) => {
        throw new Error(
          `${label}: ${why}: exit ${status}\nstdout: ${brief(stdout.text, 600)}\nstderr: ${brief(stderr.text, 1200)}`,
        );
      };
      const allowed = [0, 2, 3, 4, 5, ...(['doctor', 'gc'].includes(verb) ? [1] : [])];
      if (!allowed.includes(status)) fail(status === 1 ? 'an internal error' : 'an exit status outside 0-5');
      if (/\n\s+at .+[(:]\d+/.test(stderr.text) || /\n\s+at .+[(:]\d+/.test(stdout.text))
        fail('a stack trace');
      // A failure says what it is: `netctl: <message>`, or commander's usage when there is no verb at all.
      if (status !== 0 && !/^netctl: /m.test(stderr.text) && !(status === 2 && /^Usage: /m.test(stderr.text)))
        fail('a failure without a "netctl: " message');
      if (status === 5 && !deadlineGiven) fail('"unavailable" from a daemon that answers');
      // `rm` of several, gc and repair go on past a failure (docs/cli.md): what they did is accepted.
      const partial = changed > 0 && argv.some((t) => ['rm', 'remove', 'gc', 'repair'].includes(t));
      return { accepted: status === 5 ? 'unknown' : status === 0 || partial };
    };

    // ------------------------------------------------------------ the property
    await fuzzGuarded({
      label: 'cli',
      runs: 60,
      maxCalls: 8,
      calls: argvArb,
      stateDir,
      daemonPid: daemon.pid,
      carries: (argv) => !argv.some((t) => ['daemon', 'cni', 'install'].includes(t)) && argv,
      expectation: () => 'lazy',
      send,
      restore,
      describe,
    });
    await watch.expectAlive();
  } finally {
    log.level = logLevel;
    recordFigures({ inputs });
    process.stdout.write(fuzzReport('cli'));
    files.remove();
    rmSync(runRoot, { recursive: true, force: true });
  }
}, 300_000);
