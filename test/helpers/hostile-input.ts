/**
 * Hostile input for fuzzers: values that break parsers and checks (huge,
 * unicode, control characters, prototype keys, NaN-ish numbers, CIDRs and
 * addresses that are almost right, paths to things that are not network
 * namespaces, names at and past their limit), and mutations of valid
 * requests made of them — drop, add, duplicate or retype a field, nest it
 * deep, grow it huge, bend it slightly — down to the bytes of the JSON
 * text (truncated, doubled keys, number literals JSON.parse turns into
 * Infinity).
 *
 * Mutations are data (fast-check shrinks them, and a failure prints them);
 * `applyMutations` turns a valid value and a list of them into the text to
 * send. `isSafeToSend` keeps a fuzzer from naming what it must never touch
 * even by accident: another process's namespaces under /proc/PID or file
 * descriptors, which a netctl bug could then wire into someone else's
 * network.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';

// ------------------------------------------------------------ hostile values

const PROTOTYPE_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf'];

const NAMES = [
  'a'.repeat(63),
  'a'.repeat(64),
  'a'.repeat(65),
  'x'.repeat(255),
  '-lead',
  '.',
  '..',
  'a b',
  'a/b',
  'a\\b',
  'ünïcödé',
  '名前',
  '🦊',
  'a\u0000b',
  'a\nb',
  'tab\there',
  '\u202Eevil',
  'zero\u200Bwidth',
  `${'a'.repeat(63)}é`,
  'ａｂｃ',
  '',
  ' ',
];

const NUMBERISH = [
  'NaN',
  'Infinity',
  '-Infinity',
  '-0',
  '1e309',
  '0x1F',
  '0o7',
  '1_000',
  ' 42',
  '42 ',
  '+1',
  '٣',
  '1.0',
  '-1',
];

export const ALMOST_CIDRS = [
  '10.0.0.0/33',
  '10.0.0.0/-1',
  '10.0.0.0/',
  '/24',
  '10.0.0/24',
  '10.0.0.0.0/24',
  '10.0.0.256/24',
  '10.0.0.1/24',
  '010.000.000.000/24',
  '10.0.0.0/024',
  '10.0.0.0/24 ',
  ' 10.0.0.0/24',
  '10.0.0.0/24\n',
  '10.0.0.0\\24',
  '0.0.0.0/0',
  '::/0',
  '::ffff:10.0.0.0/104',
  'fe80::/10',
  'ff02::/16',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '224.0.0.0/4',
  '255.255.255.255/32',
  '10.0.0.0/31',
  '10.0.0.0/32',
  'fd00::/129',
  'fd00:::/64',
  'fd00::/64',
  '1.2.3.4/32',
  '10.0.0.0/8',
  '192.168.0.0/16',
];

export const ALMOST_IPS = [
  '10.0.0.1.',
  '10.0.0',
  '256.0.0.1',
  '10.0.0.1/24',
  '::1::',
  'fe80::1%lo',
  '0x0a.0.0.1',
  '10.0.0.01',
  '::ffff:1.2.3.4',
  '0.0.0.0',
  '255.255.255.255',
  '127.0.0.1',
  '::',
  '::1',
  'localhost',
  '1.2.3.4 ',
  '١.٢.٣.٤',
];

const MACS = [
  '00:11:22:33:44:5',
  '00:11:22:33:44:55:66',
  'ff:ff:ff:ff:ff:ff',
  '01:00:5e:00:00:01',
  '00:00:00:00:00:00',
  '00-11-22-33-44-55',
  '0:1:2:3:4:5',
];

/** What would break a config file, a rule or a shell if netctl ever pasted it into one. */
const INJECTIONS = [
  'x\n-A INPUT -j DROP',
  'x" -j ACCEPT #',
  'COMMIT\n*filter',
  '$(touch /tmp/netctl-fuzz-pwned)',
  '`id`',
  '; reboot',
  '%s%s%n',
  '{{7*7}}',
  '\r\n\r\nGET / HTTP/1.1',
  '../../../../etc/passwd',
  'nameserver 1.1.1.1\nnameserver 6.6.6.6',
];

const IDS = ['f'.repeat(63), 'F'.repeat(64), 'g'.repeat(64), '0'.repeat(64), `${'a'.repeat(64)}0`];

export const HOSTILE_NUMBERS = [
  0,
  -1,
  1,
  65535,
  65536,
  2 ** 22,
  2 ** 22 + 1,
  2 ** 31,
  2 ** 32,
  2 ** 53,
  -0,
  0.5,
  1e308,
  -1e308,
  Number.MIN_VALUE,
  Number.MAX_SAFE_INTEGER + 2,
];

/** Files that are not network namespaces, in a temp dir of their own. */
export interface HostileFiles {
  dir: string;
  fifo: string;
  directory: string;
  loop: string;
  empty: string;
  text: string;
  toSelf: string;
  /** Every hostile path: these, and the well-known ones. */
  paths: string[];
  remove(): void;
}

export function hostileFiles(): HostileFiles {
  const dir = mkdtempSync(join(tmpdir(), 'netctl-fuzz-files-'));
  const at = (name: string) => join(dir, name);
  execFileSync('mkfifo', [at('fifo')]);
  mkdirSync(at('dir'));
  symlinkSync(at('loop-b'), at('loop-a'));
  symlinkSync(at('loop-a'), at('loop-b'));
  writeFileSync(at('empty'), '');
  writeFileSync(at('text'), 'not a namespace\n');
  symlinkSync('/proc/self/ns/net', at('to-self'));
  const files = {
    dir,
    fifo: at('fifo'),
    directory: at('dir'),
    loop: at('loop-a'),
    empty: at('empty'),
    text: at('text'),
    toSelf: at('to-self'),
  };
  return {
    ...files,
    paths: [
      ...Object.values(files),
      at('missing'),
      ...SAFE_PROC_PATHS,
      '/dev/zero',
      '/dev/null',
      '/',
      'relative/ns',
      'ns',
      '/run/netns/',
      '/run/netns/../netns/missing',
      `/${'a/'.repeat(2100)}x`,
      `${at('empty')}\u0000tail`,
      `${at('dir')}/../empty`,
    ],
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Every family of hostile string, with `extra` (a caller's own: its files, its names) mixed in. */
export function hostileString(extra: string[] = []): fc.Arbitrary<string> {
  return fc.oneof(
    { arbitrary: fc.constantFrom(...NAMES, ...NUMBERISH, ...MACS, ...IDS, ...PROTOTYPE_KEYS), weight: 4 },
    { arbitrary: fc.constantFrom(...ALMOST_CIDRS, ...ALMOST_IPS), weight: 4 },
    { arbitrary: fc.constantFrom(...INJECTIONS), weight: 2 },
    ...(extra.length ? [{ arbitrary: fc.constantFrom(...extra), weight: 3 }] : []),
    { arbitrary: fc.string({ unit: 'binary', maxLength: 40 }), weight: 2 },
    { arbitrary: fc.string({ unit: 'grapheme', maxLength: 40 }), weight: 1 },
    {
      arbitrary: fc.string({
        unit: fc.integer({ min: 0, max: 31 }).map((c) => String.fromCharCode(c)),
        maxLength: 8,
      }),
      weight: 1,
    },
    {
      // Huge: past a 64 KiB line and, rarely, past the 1 MiB body limit.
      arbitrary: fc.constantFrom(70_000, 1_100_000).map((n) => 'x'.repeat(n)),
      weight: 1,
    },
  );
}

/** Any hostile JSON value: strings as above, hostile numbers, the wrong type, prototype-keyed objects. */
export function hostileValue(extra: string[] = []): fc.Arbitrary<unknown> {
  return fc.oneof(
    { arbitrary: hostileString(extra), weight: 6 },
    { arbitrary: fc.constantFrom<unknown>(...HOSTILE_NUMBERS), weight: 3 },
    { arbitrary: fc.constantFrom<unknown>(true, false, null, [], {}, [null], ['']), weight: 2 },
    {
      arbitrary: fc
        .tuple(fc.constantFrom(...PROTOTYPE_KEYS), fc.jsonValue({ maxDepth: 1 }))
        .map(([k, v]) => withKey({}, k, v)),
      weight: 1,
    },
    { arbitrary: fc.jsonValue({ maxDepth: 2 }), weight: 1 },
  );
}

/**
 * A bridge network's options (`-o`, Docker's generic options), known keys
 * and misspelt ones, with values right, wrong and hostile; `names` are the
 * test's own bridge names (and the network names it may clash with).
 */
export function bridgeOptions(names: string[]): fc.Arbitrary<Record<string, string>> {
  return fc.dictionary(
    fc.constantFrom(
      'com.docker.network.bridge.name',
      'com.docker.network.bridge.enable_icc',
      'com.docker.network.bridge.enable_ip_masquerade',
      'com.docker.network.bridge.host_binding_ipv4',
      'com.docker.network.driver.mtu',
      'com.docker.network.bridge.nme',
      'netctl.name',
      'custom.key',
    ),
    fc.oneof(
      fc.constantFrom(
        'true',
        'false',
        'maybe',
        '0',
        '1',
        '68',
        '1500',
        '65536',
        '-1',
        'lo',
        '',
        '127.0.0.1',
        ...names,
      ),
      hostileString(),
    ),
    { maxKeys: 3, noNullPrototype: true },
  );
}

/** A body of any hostile JSON value, or none. */
export const hostileBody = (values: fc.Arbitrary<unknown>): fc.Arbitrary<Payload> =>
  fc.option(
    values.map((v) => JSON.stringify(v)),
    { nil: undefined },
  );

// ------------------------------------------------------------ mutations

export type Mutation =
  /** Remove the field (the root: no body at all). */
  | { kind: 'drop'; at: number }
  /** Put a hostile value there. */
  | { kind: 'set'; at: number; value: unknown }
  /** Add a key (prototype keys included) to the object there, or the nearest one above. */
  | { kind: 'addKey'; at: number; key: string; value: unknown }
  /** The same value as another JSON type: 80 <-> "80", x -> [x], {"x": x}, null, true. */
  | { kind: 'retype'; at: number; to: number }
  /** Wrapped in `depth` arrays or objects. */
  | { kind: 'nest'; at: number; depth: number; array: boolean }
  /** A string or array repeated `times` times. */
  | { kind: 'grow'; at: number; times: number }
  /** A value almost like it: a CIDR one bit off, a name one character too long, a port one past. */
  | { kind: 'nearMiss'; at: number; variant: number };

export type TextMutation =
  /** The first key twice, the first time with this value (JSON.parse keeps the last). */
  | { kind: 'dupKey'; value: string }
  | { kind: 'truncate'; at: number }
  | { kind: 'append'; text: string }
  /** A byte-order mark, whitespace, garbage before the JSON. */
  | { kind: 'prepend'; text: string }
  /** The first number written as this literal (1e999 parses as Infinity, -0 as -0). */
  | { kind: 'number'; literal: string }
  /** Something else entirely. */
  | { kind: 'replace'; text: string };

const pathIndex = fc.nat({ max: 1000 });

export function mutationArbitrary(values: fc.Arbitrary<unknown>): fc.Arbitrary<Mutation> {
  return fc.oneof(
    fc.record({ kind: fc.constant('drop' as const), at: pathIndex }),
    fc.record({ kind: fc.constant('set' as const), at: pathIndex, value: values }),
    fc.record({
      kind: fc.constant('addKey' as const),
      at: pathIndex,
      key: fc.oneof(fc.constantFrom(...PROTOTYPE_KEYS, '', 'x'.repeat(300)), fc.string({ maxLength: 12 })),
      value: values,
    }),
    fc.record({ kind: fc.constant('retype' as const), at: pathIndex, to: fc.nat({ max: 5 }) }),
    fc.record({
      kind: fc.constant('nest' as const),
      at: pathIndex,
      depth: fc.constantFrom(2, 64, 1000, 20_000, 200_000),
      array: fc.boolean(),
    }),
    fc.record({ kind: fc.constant('grow' as const), at: pathIndex, times: fc.constantFrom(2, 100, 10_000) }),
    fc.record({ kind: fc.constant('nearMiss' as const), at: pathIndex, variant: fc.nat({ max: 15 }) }),
  );
}

export function textMutationArbitrary(): fc.Arbitrary<TextMutation> {
  return fc.oneof(
    fc.record({
      kind: fc.constant('dupKey' as const),
      value: fc.constantFrom('null', '1', '"x"', '[]', '{}', '1e999'),
    }),
    fc.record({ kind: fc.constant('truncate' as const), at: fc.nat({ max: 400 }) }),
    fc.record({
      kind: fc.constant('append' as const),
      text: fc.constantFrom('}', ']', ',', ' garbage', '\u0000', '{}', '\n\n'),
    }),
    fc.record({
      kind: fc.constant('prepend' as const),
      text: fc.constantFrom('\uFEFF', ' \n\t', 'x', '[', '\u0000'),
    }),
    fc.record({
      kind: fc.constant('number' as const),
      literal: fc.constantFrom(
        '1e999',
        '-1e999',
        '-0',
        '1E400',
        '0.0000000000000000000001',
        '123456789012345678901234567890',
        '1.5',
        '-1',
      ),
    }),
    fc.record({
      kind: fc.constant('replace' as const),
      text: fc.constantFrom(
        '',
        'null',
        '[]',
        '"string"',
        '0',
        'true',
        '{',
        'NaN',
        'undefined',
        '{"a":1}{"b":2}',
        '\uFEFF{}',
      ),
    }),
  );
}

/** A valid value's mutants, as the text to send (undefined: no body). */
export function mutatedPayload(
  valid: fc.Arbitrary<unknown>,
  values: fc.Arbitrary<unknown>,
): fc.Arbitrary<Payload> {
  return fc
    .tuple(
      valid,
      fc.array(mutationArbitrary(values), { minLength: 1, maxLength: 3 }),
      fc.option(textMutationArbitrary(), { freq: 5 }),
    )
    .map(([value, mutations, text]) => applyMutations(value, mutations, text ?? undefined));
}

/** A body on the wire: JSON text (perhaps broken), or none at all. */
export type Payload = string | undefined;

type Path = (string | number)[];

/** Deep nesting is written into the text after JSON.stringify, which would overflow its stack. */
const NEST_MARK = '\u0001nest\u0001';

/** The most JSON text a mutant may have (a few times the daemons' 1 MiB limit): grow of grow stays sane. */
const MAX_TEXT = 3 * 1024 * 1024;

export function applyMutations(valid: unknown, mutations: Mutation[], text?: TextMutation): Payload {
  let out: Payload = JSON.stringify(valid);
  for (const m of mutations) {
    if (out === undefined) break; // dropped whole: no body
    const next = mutateOnce(JSON.parse(out) as unknown, m);
    if (next === DROPPED) {
      out = undefined;
      break;
    }
    let written: string | undefined;
    try {
      written = JSON.stringify(next);
    } catch {
      written = undefined; // too big for a string: this mutation is left out
    }
    if (written !== undefined && written.length <= MAX_TEXT) out = written;
  }
  if (out !== undefined) {
    // Each mark grows the text by its depth: the ones past MAX_TEXT stay a plain 0.
    let room = MAX_TEXT - out.length;
    out = out.replace(/"\\u0001nest\\u0001(\d+):([[{])"/g, (_, d, open) => {
      const text = nested(Number(d), open);
      if (text.length > room) return '0';
      room -= text.length;
      return text;
    });
  }
  return text ? applyText(out ?? '', text) : out;
}

const DROPPED = Symbol('dropped');

function mutateOnce(value: unknown, m: Mutation): unknown {
  const paths = pathsOf(value);
  const path = paths[m.at % paths.length] as Path;
  switch (m.kind) {
    case 'drop':
      return path.length === 0 ? DROPPED : deleteAt(value, path);
    case 'set':
      return setAt(value, path, clone(m.value));
    case 'addKey': {
      let objectPath = path;
      while (objectPath.length && !isObject(getAt(value, objectPath))) objectPath = objectPath.slice(0, -1);
      const target = getAt(value, objectPath);
      if (!isObject(target)) return withKey({}, m.key, clone(m.value));
      withKey(target, m.key, clone(m.value));
      return value;
    }
    case 'retype':
      return setAt(value, path, retype(getAt(value, path), m.to));
    case 'nest':
      return setAt(value, path, `${NEST_MARK}${m.depth}:${m.array ? '[' : '{'}`);
    case 'grow':
      return setAt(value, path, grow(getAt(value, path), m.times));
    case 'nearMiss':
      return setAt(value, path, nearMiss(getAt(value, path), m.variant));
  }
}

function nested(depth: number, open: string): string {
  return open === '['
    ? `${'['.repeat(depth)}0${']'.repeat(depth)}`
    : `${'{"a":'.repeat(depth)}0${'}'.repeat(depth)}`;
}

function applyText(text: string, m: TextMutation): string {
  switch (m.kind) {
    case 'dupKey':
      return text.replace(
        /^(\s*\{)("(?:[^"\\]|\\.)*")\s*:/,
        (_, open, key) => `${open}${key}:${m.value},${key}:`,
      );
    case 'truncate':
      return text.slice(0, m.at % (text.length + 1));
    case 'append':
      return text + m.text;
    case 'prepend':
      return m.text + text;
    case 'number':
      return text.replace(/([:[,]\s*)-?\d+(\.\d+)?([eE][+-]?\d+)?/, (_, before) => `${before}${m.literal}`);
    case 'replace':
      return m.text;
  }
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** A deep copy through JSON, which keeps `__proto__` as an own key (an object literal would set the prototype). */
function clone<T>(v: T): T {
  return v === undefined ? v : (JSON.parse(JSON.stringify(v)) as T);
}

/** Set an own key, even `__proto__`. */
export function withKey<T extends object>(target: T, key: string, value: unknown): T {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  return target;
}

function pathsOf(value: unknown, prefix: Path = [], out: Path[] = []): Path[] {
  out.push(prefix);
  if (out.length > 200) return out;
  if (Array.isArray(value)) for (const [i, v] of value.entries()) pathsOf(v, [...prefix, i], out);
  else if (isObject(value)) for (const k of Object.keys(value)) pathsOf(value[k], [...prefix, k], out);
  return out;
}

function getAt(value: unknown, path: Path): unknown {
  let at = value;
  for (const p of path) at = (at as Record<string | number, unknown>)?.[p];
  return at;
}

function setAt(value: unknown, path: Path, replacement: unknown): unknown {
  if (path.length === 0) return replacement;
  const parent = getAt(value, path.slice(0, -1)) as Record<string | number, unknown>;
  withKey(parent, String(path.at(-1)), replacement);
  if (Array.isArray(parent)) parent[path.at(-1) as number] = replacement;
  return value;
}

function deleteAt(value: unknown, path: Path): unknown {
  const parent = getAt(value, path.slice(0, -1));
  const last = path.at(-1) as string | number;
  if (Array.isArray(parent)) parent.splice(last as number, 1);
  else delete (parent as Record<string, unknown>)[last as string];
  return value;
}

function retype(v: unknown, to: number): unknown {
  const options: unknown[] = [
    typeof v === 'string' && v.trim() !== '' && !Number.isNaN(Number(v))
      ? Number(v)
      : String(JSON.stringify(v) ?? ''),
    [v],
    { x: v },
    null,
    typeof v === 'boolean' ? String(v) : true,
    typeof v === 'number' ? String(v) : 0,
  ];
  return options[to % options.length];
}

function grow(v: unknown, times: number): unknown {
  if (typeof v === 'string') return v.repeat(Math.min(times, Math.ceil(1_200_000 / Math.max(v.length, 1))));
  if (Array.isArray(v)) return Array.from({ length: times }, (_, i) => v[i % Math.max(v.length, 1)] ?? 0);
  if (typeof v === 'number') return v * times ** 4;
  return Array.from({ length: times }, () => v);
}

/** Almost the value: bent the way a typo or an off-by-one bends it. */
function nearMiss(v: unknown, variant: number): unknown {
  if (typeof v === 'number') {
    const bent = [v + 1, v - 1, -v, v + 0.5, v * 2 ** 32, String(v), 2 ** 53 + 1, 65536, 0, -1];
    return bent[variant % bent.length];
  }
  if (typeof v !== 'string') return retype(v, variant);
  const cidr = /^(.*)\/(\d+)$/.exec(v);
  if (cidr) {
    const [, ip, bits] = cidr as unknown as [string, string, string];
    const max = ip.includes(':') ? 128 : 32;
    const bent = [
      `${ip}/${max + 1}`,
      ip,
      `${ip}/`,
      `${ip}/0`,
      `${ip.replace(/\d+$/, (d) => String(Number(d) + 1))}/${bits}`,
      `${ip}/${bits} `,
      `0${ip}/${bits}`,
      `${ip}/0${bits}`,
      `${ip}/${Number(bits) - 1}`,
      `${ip.replace(/\.\d+$/, '')}/${bits}`,
    ];
    return bent[variant % bent.length];
  }
  if (/^[0-9a-fA-F.:]+$/.test(v) && /[.:]/.test(v)) {
    const bent = [
      `${v}.`,
      v.replace(/[.:][^.:]*$/, ''),
      `${v}/32`,
      `0${v}`,
      `${v}%lo`,
      v.replace(/\d+$/, '256'),
      ` ${v}`,
      `${v}\u0000`,
      v.toUpperCase(),
      `::ffff:${v}`,
    ];
    return bent[variant % bent.length];
  }
  const bent = [
    v.padEnd(64, 'x'),
    v.padEnd(65, 'x'),
    `${v}\n`,
    `${v}\u0000`,
    ` ${v}`,
    v.toUpperCase(),
    v.replace(/a/g, 'а'), // Cyrillic a
    `${v}🦊`,
    '',
    `-${v}`,
    `${v}/..`,
    v.repeat(3),
  ];
  return bent[variant % bent.length];
}

// ------------------------------------------------------------ reading a payload as the server does

/** The payload as the daemon's JSON parser reads it (a leading BOM skipped), or undefined when it is not JSON. */
export function parsePayload(payload: Payload): { json: unknown } | undefined {
  if (payload === undefined) return undefined;
  try {
    return { json: JSON.parse(payload.replace(/^\uFEFF/, '')) };
  } catch {
    return undefined;
  }
}

// ------------------------------------------------------------ what a fuzzer must never send

/** Paths under /proc that name this machine's own namespaces only (the daemon's, which it refuses). */
export const SAFE_PROC_PATHS = [
  '/proc/1/../self/ns/net',
  '/proc/self/ns/net',
  '/proc/thread-self/ns/net',
  '/proc/self/ns/mnt',
  '/proc/self/ns/user',
];

/**
 * Every string in a value (keys too), and inside strings that are JSON
 * themselves (a CNI configuration forwarded as text): escapes such as
 * `\u0070roc` are decoded before anything is looked at.
 */
export function stringsIn(value: unknown): string[] {
  // Iterative: a fuzzed value may be nested 200,000 deep.
  const out: string[] = [];
  const stack: { value: unknown; depth: number }[] = [{ value, depth: 0 }];
  while (stack.length) {
    const { value: v, depth } = stack.pop() as { value: unknown; depth: number };
    if (typeof v === 'string') {
      out.push(v);
      if (depth < 4 && /^\s*[[{"]/.test(v)) {
        const inner = parsePayload(v);
        if (inner) stack.push({ value: inner.json, depth: depth + 1 });
      }
    } else if (Array.isArray(v)) {
      for (const item of v) stack.push({ value: item, depth });
    } else if (isObject(v)) {
      for (const [k, item] of Object.entries(v)) {
        out.push(k);
        stack.push({ value: item, depth });
      }
    }
  }
  return out;
}

/**
 * False for anything that could reach another process's namespaces or
 * file descriptors (/proc/PID/..., /dev/fd/...): pid 1 here is the real
 * host's init, outside the test's namespace, and other people's tests run
 * beside this one. `allowed` adds exact strings that are safe (the
 * daemon's own /proc/PID/ns/net, which it must refuse).
 */
export function isSafeToSend(value: unknown, allowed: string[] = []): boolean {
  const safe = new Set([...SAFE_PROC_PATHS, ...allowed]);
  for (const s of stringsIn(value)) {
    // A C string ends at the first NUL: what follows may hide nothing, what precedes is the path.
    for (const candidate of [s, s.split('\u0000')[0] as string]) {
      if (safe.has(candidate)) continue;
      if (/proc/i.test(candidate) && /[/\\]/.test(candidate)) return false;
      if (/(^|\/)(dev\/)?fd(\/|$)|\/dev\/std|\/self\/(root|cwd|fd|task|map_files)/.test(candidate))
        return false;
    }
  }
  return true;
}
