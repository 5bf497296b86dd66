/**
 * The CNI dispatcher (src/cni/skel.ts) with injected I/O: the env table,
 * version checks, error codes and exit statuses, result conversion — the
 * parts of the spec that do not need a controller.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  type CmdArgs,
  CniCode,
  CniError,
  CODE_OF_CLASS,
  dispatch,
  type Handlers,
  toCniError,
} from '../../../src/cni/skel.js';
import { CURRENT_VERSION, type Result } from '../../../src/cni/types.js';
import { Errors } from '../../../src/errors.js';
import { PoolOverlapError } from '../../../src/ipam/errors.js';
import { packageRoot } from '../../../src/paths.js';

const RESULT: Result = {
  cniVersion: CURRENT_VERSION,
  interfaces: [
    { name: 'br0', mac: '02:00:00:00:00:01' },
    { name: 'eth0', mac: '02:00:00:00:00:02', mtu: 1500, sandbox: '/run/netns/x' },
  ],
  ips: [
    { address: '10.1.0.2/24', gateway: '10.1.0.1', interface: 1 },
    { address: 'fd00::2/64', gateway: 'fd00::1', interface: 1 },
  ],
  routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1', priority: 5 }],
};

const BASE_ENV = {
  CNI_COMMAND: 'ADD',
  CNI_CONTAINERID: 'c1',
  CNI_NETNS: '/run/netns/x',
  CNI_IFNAME: 'eth0',
  CNI_PATH: '/opt/cni/bin',
};

function handlers(overrides: Partial<Handlers> = {}): Handlers & { seen: CmdArgs[] } {
  const seen: CmdArgs[] = [];
  const record = async (args: CmdArgs) => {
    seen.push(args);
  };
  return {
    seen,
    add: async (args) => {
      seen.push(args);
      return RESULT;
    },
    del: record,
    check: record,
    status: record,
    gc: record,
    ...overrides,
  };
}

async function run(
  env: Record<string, string | undefined>,
  stdin: string | object,
  h: Handlers | (() => Promise<Handlers>) = handlers(),
) {
  let stdout = '';
  const code = await dispatch(
    {
      getenv: (name) => env[name],
      readStdin: async () => (typeof stdin === 'string' ? stdin : JSON.stringify(stdin)),
      stdout: (text) => {
        stdout += text;
      },
    },
    h,
  );
  return { code, out: stdout ? JSON.parse(stdout) : undefined, raw: stdout };
}

const conf = (version = '1.1.0', extra: object = {}) => ({
  cniVersion: version,
  name: 'net1',
  type: 'netctl-cni',
  ...extra,
});

describe('VERSION', () => {
  it('lists the versions we speak and echoes the one asked, without loading the handlers', async () => {
    const never = async (): Promise<Handlers> => {
      throw new Error('VERSION must not load the plugin');
    };
    const r = await run({ CNI_COMMAND: 'VERSION' }, { cniVersion: '0.4.0' }, never);
    expect(r.code).toBe(0);
    expect(r.out).toEqual({
      cniVersion: '0.4.0',
      supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'],
    });
  });

  it('answers even with nothing (or garbage) on stdin, in the newest version', async () => {
    expect((await run({ CNI_COMMAND: 'VERSION' }, '')).out.cniVersion).toBe('1.1.0');
    expect((await run({ CNI_COMMAND: 'VERSION' }, '{"cniVersion":"9.9.9"}')).out.cniVersion).toBe('1.1.0');
  });
});

describe('the environment (error 4)', () => {
  it('no CNI_COMMAND', async () => {
    const r = await run({}, conf());
    expect(r).toMatchObject({
      code: 4,
      out: { code: 4, msg: 'required env variables [CNI_COMMAND] missing' },
    });
  });

  it('an unknown CNI_COMMAND', async () => {
    expect((await run({ ...BASE_ENV, CNI_COMMAND: 'FROB' }, conf())).out).toMatchObject({
      code: 4,
      msg: 'unknown CNI_COMMAND: FROB',
    });
  });

  it('names every variable ADD and CHECK miss', async () => {
    for (const command of ['ADD', 'CHECK']) {
      const r = await run({ CNI_COMMAND: command }, conf());
      expect(r.code).toBe(4);
      expect(r.out.msg).toBe('required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME] missing');
    }
  });

  it('DEL needs no CNI_NETNS (the namespace may be gone); GC needs CNI_PATH; STATUS only the command', async () => {
    const h = handlers();
    expect((await run({ ...BASE_ENV, CNI_COMMAND: 'DEL', CNI_NETNS: undefined }, conf(), h)).code).toBe(0);
    expect(h.seen.at(-1)).toMatchObject({ command: 'DEL', netns: '', containerId: 'c1', ifname: 'eth0' });
    expect((await run({ CNI_COMMAND: 'GC' }, conf(), h)).out.msg).toBe(
      'required env variables [CNI_PATH] missing',
    );
    expect((await run({ CNI_COMMAND: 'GC', CNI_PATH: '/x' }, conf(), h)).code).toBe(0);
    expect((await run({ CNI_COMMAND: 'STATUS' }, conf(), h)).code).toBe(0);
  });

  it('checks the values a verb uses: container id, interface name, netns path, CNI_ARGS', async () => {
    const bad: Record<string, string> = {
      CNI_CONTAINERID: '-x',
      CNI_IFNAME: 'a-very-long-interface-name',
      CNI_NETNS: 'relative/path',
      CNI_ARGS: 'IP=10.1.0.5;junk',
    };
    for (const [name, value] of Object.entries(bad)) {
      const r = await run({ ...BASE_ENV, [name]: value }, conf());
      expect(r.code, name).toBe(4);
      expect(r.out.msg).toBe(`invalid ${name}`);
      expect(r.out.details).toContain(name);
    }
    for (const ifname of ['a:b', 'a b', 'a/b', '..']) {
      expect((await run({ ...BASE_ENV, CNI_IFNAME: ifname }, conf())).code).toBe(4);
    }
    // Not checked, nor handed on, where the verb does not use it.
    for (const verb of ['STATUS', 'GC']) {
      const h = handlers();
      const env = { CNI_COMMAND: verb, CNI_PATH: '/opt/cni/bin', CNI_CONTAINERID: '-x', CNI_ARGS: '\u0001' };
      expect((await run(env, conf(), h)).code, verb).toBe(0);
      expect(h.seen[0]).toMatchObject({ containerId: '', args: '' });
      expect(h.seen[0]?.argsMap.size).toBe(0);
    }
  });

  it('hands the handler the parameters and CNI_ARGS as keys', async () => {
    const h = handlers();
    await run({ ...BASE_ENV, CNI_ARGS: 'IgnoreUnknown=1;IP=10.1.0.9' }, conf('1.0.0'), h);
    expect(h.seen[0]).toMatchObject({
      command: 'ADD',
      containerId: 'c1',
      netns: '/run/netns/x',
      ifname: 'eth0',
      cniVersion: '1.0.0',
      config: { name: 'net1' },
    });
    expect([...(h.seen[0]?.argsMap ?? [])]).toEqual([
      ['IgnoreUnknown', '1'],
      ['IP', '10.1.0.9'],
    ]);
  });
});

describe('the configuration', () => {
  it('malformed JSON: error 6, exit status 6', async () => {
    const r = await run(BASE_ENV, '{"cniVersion": ');
    expect(r.code).toBe(6);
    expect(r.out).toMatchObject({
      cniVersion: '1.1.0',
      code: 6,
      msg: 'error decoding the network configuration',
    });
    expect((await run(BASE_ENV, '[1,2]')).code).toBe(6);
  });

  it('no name, or an invalid one: error 7', async () => {
    expect((await run(BASE_ENV, { cniVersion: '1.0.0' })).out).toMatchObject({
      code: 7,
      msg: 'missing network name',
    });
    expect((await run(BASE_ENV, { cniVersion: '1.0.0', name: 'a/b' })).out).toMatchObject({ code: 7 });
  });

  it('a version we do not speak: error 1 listing ours (no cniVersion is 0.1.0)', async () => {
    for (const version of ['0.2.0', '2.0.0', undefined]) {
      const r = await run(BASE_ENV, { name: 'n', ...(version ? { cniVersion: version } : {}) });
      expect(r.code).toBe(1);
      expect(r.out).toMatchObject({ code: 1, msg: 'incompatible CNI versions' });
      expect(r.out.details).toContain('0.3.0 0.3.1 0.4.0 1.0.0 1.1.0');
    }
  });

  it('CHECK needs 0.4.0, STATUS and GC 1.1.0', async () => {
    expect((await run({ ...BASE_ENV, CNI_COMMAND: 'CHECK' }, conf('0.3.1'))).out).toMatchObject({
      code: 1,
      msg: 'config version does not allow CHECK',
    });
    expect((await run({ ...BASE_ENV, CNI_COMMAND: 'CHECK' }, conf('0.4.0'))).code).toBe(0);
    for (const command of ['STATUS', 'GC']) {
      expect((await run({ ...BASE_ENV, CNI_COMMAND: command }, conf('1.0.0'))).out).toMatchObject({
        code: 1,
        msg: `config version does not allow ${command}`,
      });
    }
  });

  it('stdin that cannot be read: error 5', async () => {
    let out = '';
    const code = await dispatch(
      {
        getenv: (n) => (BASE_ENV as Record<string, string>)[n],
        readStdin: async () => {
          throw new Error('EIO');
        },
        stdout: (t) => {
          out += t;
        },
      },
      handlers(),
    );
    expect(code).toBe(5);
    expect(JSON.parse(out)).toMatchObject({ code: 5 });
  });
});

describe('results', () => {
  it('1.1.0 and 1.0.0 as built', async () => {
    const r = await run(BASE_ENV, conf('1.1.0'));
    expect(r.code).toBe(0);
    expect(r.out).toEqual({ ...RESULT, cniVersion: '1.1.0' });
    expect((await run(BASE_ENV, conf('1.0.0'))).out.cniVersion).toBe('1.0.0');
  });

  it('0.4.0 and 0.3.x: IPs with their version, no interface mtu, routes dst and gw only', async () => {
    for (const version of ['0.4.0', '0.3.1', '0.3.0']) {
      const r = await run(BASE_ENV, conf(version));
      expect(r.out).toEqual({
        cniVersion: version,
        interfaces: [
          { name: 'br0', mac: '02:00:00:00:00:01' },
          { name: 'eth0', mac: '02:00:00:00:00:02', sandbox: '/run/netns/x' },
        ],
        ips: [
          { version: '4', address: '10.1.0.2/24', gateway: '10.1.0.1', interface: 1 },
          { version: '6', address: 'fd00::2/64', gateway: 'fd00::1', interface: 1 },
        ],
        routes: [{ dst: '0.0.0.0/0', gw: '10.1.0.1' }],
      });
    }
  });

  it('DEL, CHECK, STATUS and GC print nothing on success', async () => {
    for (const command of ['DEL', 'CHECK', 'STATUS', 'GC']) {
      const r = await run({ ...BASE_ENV, CNI_COMMAND: command }, conf());
      expect(r).toMatchObject({ code: 0, raw: '' });
    }
  });
});

describe('errors', () => {
  const failing = (err: unknown) => handlers({ add: async () => Promise.reject(err) });

  it('the registry by class (docs/errors.md), with the netctl code as details', async () => {
    const cases: [unknown, number][] = [
      [new Errors.NetworkNotFound('web'), 7],
      [new Errors.InvalidRequest('x'), 7],
      [new Errors.SandboxNotFound('c'), 3],
      [new Errors.EndpointNotFound('c on web'), 3],
      [new Errors.PortInUse('0.0.0.0:80/tcp', 'a'), 100],
      [new Errors.StoreUnavailable('lmdb', 'down'), 11],
      [new Errors.Internal('boom'), 101],
      [new PoolOverlapError('10.1.0.0/24', '10.1.0.0/16', 'local'), 100],
      [new Error('EPERM: operation not permitted'), 101],
    ];
    for (const [err, code] of cases) {
      const r = await run(BASE_ENV, conf('1.0.0'), failing(err));
      expect(r.code).toBe(code);
      expect(r.out).toMatchObject({ cniVersion: '1.0.0', code, msg: (err as Error).message });
    }
    expect((await run(BASE_ENV, conf(), failing(new Errors.NetworkNotFound('web')))).out.details).toBe(
      'NETCTL_NETWORK_NOT_FOUND',
    );
  });

  it('the CNI column of docs/errors.md, class by class', () => {
    const doc = readFileSync(join(packageRoot, 'docs', 'errors.md'), 'utf8');
    const documented = Object.fromEntries(
      [...doc.matchAll(/^\| (\w+) \| [^|]+ \| [^|]+ \| (\d+)[^|]* \| \d+ \|$/gm)].map((m) => [
        m[1],
        Number(m[2]),
      ]),
    );
    expect(documented).toEqual(CODE_OF_CLASS);
  });

  it('a CniError as it is', async () => {
    const r = await run(BASE_ENV, conf('0.4.0'), failing(new CniError(2, 'unsupported field x=1', 'why')));
    expect(r).toMatchObject({
      code: 2,
      out: { cniVersion: '0.4.0', code: 2, msg: 'unsupported field x=1', details: 'why' },
    });
    expect(toCniError('a string')).toMatchObject({ code: CniCode.INTERNAL, msg: 'a string' });
  });
});
