/**
 * The skeleton of a CNI plugin (containernetworking/cni pkg/skel/skel.go):
 * one dispatcher with injected I/O, so the same code runs in a process of
 * its own (src/cni/main.ts) and inside the daemon (src/server/cni.ts).
 *
 * It reads the CNI_* parameters through an env table (which verb needs
 * which variable, and how each is checked), the network configuration from
 * stdin, checks the configuration's cniVersion against the versions we speak
 * and the verb's minimum, calls the verb's handler, and prints its result in
 * the configuration's version. Handlers throw ordinary errors — the
 * registry's (src/errors.ts) or CniError for what only CNI can say — and
 * only the dispatcher turns them into the spec's error JSON.
 *
 * Spec: https://github.com/containernetworking/cni/blob/main/SPEC.md
 */
import type { z } from 'zod';
import { MAX_JSON_DEPTH, nestsDeeperThan } from '../core/json-depth.js';
import { describeIssues } from '../core/validate.js';
import { type ErrorClass, specOf } from '../errors.js';
import {
  type CniVersion,
  CURRENT_VERSION,
  convertResult,
  isSupportedVersion,
  parseCniArgs,
  type Result,
  SUPPORTED_VERSIONS,
  versionAtLeast,
} from './types.js';

export const VERBS = ['ADD', 'DEL', 'CHECK', 'STATUS', 'VERSION', 'GC'] as const;
export type Verb = (typeof VERBS)[number];

/**
 * Error codes. 1-99 are the spec's well-known errors (SPEC.md section 5,
 * "Error"; 50 and 51 are STATUS's, section 2 "STATUS"); 100+ are free for
 * plugins, and netctl's are listed in docs/cni.md.
 */
export const CniCode = {
  /** Incompatible CNI version. */
  INCOMPATIBLE_VERSION: 1,
  /** Unsupported field in network configuration; the message names key and value. */
  UNSUPPORTED_FIELD: 2,
  /** Container unknown or does not exist (no cleanup needed). */
  UNKNOWN_CONTAINER: 3,
  /** Invalid necessary environment variables; the message names them. */
  INVALID_ENVIRONMENT: 4,
  /** I/O failure, e.g. reading the configuration from stdin. */
  IO_FAILURE: 5,
  /** Failed to decode content (JSON). */
  DECODING_FAILURE: 6,
  /** Invalid network configuration. */
  INVALID_CONFIG: 7,
  /** A transient condition: try again later. */
  TRY_AGAIN_LATER: 11,
  /** STATUS: the plugin cannot service ADD requests. */
  PLUGIN_NOT_AVAILABLE: 50,
  /** STATUS: not available, and existing containers may have limited connectivity. */
  LIMITED_CONNECTIVITY: 51,
  /** netctl: something is in the way (address or port taken, exists already). */
  CONFLICT: 100,
  /** netctl: an internal error. */
  INTERNAL: 101,
  /** netctl: CHECK found the attachment not as ADD left it. */
  CHECK_FAILED: 102,
} as const;

/**
 * The most configuration a plugin reads from stdin. The spec sets no limit;
 * real configurations are a few KiB, and a runtime that sends megabytes is
 * broken. native/cni/netctl-cni.c stops reading at the same size.
 */
export const MAX_CONFIG_BYTES = 1024 * 1024;

/** An error as the spec's error result: `{cniVersion, code, msg, details}`. */
export class CniError extends Error {
  override readonly name = 'CniError';
  constructor(
    readonly code: number,
    readonly msg: string,
    readonly details?: string,
  ) {
    super(details ? `${msg}: ${details}` : msg);
  }
}

/** How each class of the registry's errors is reported to a runtime (docs/errors.md). */
export const CODE_OF_CLASS: Record<ErrorClass, number> = {
  badRequest: CniCode.INVALID_CONFIG,
  notFound: CniCode.INVALID_CONFIG,
  conflict: CniCode.CONFLICT,
  unavailable: CniCode.TRY_AGAIN_LATER,
  internal: CniCode.INTERNAL,
};

/** Not-found errors that mean "no such container here" rather than "no such network". */
const UNKNOWN_CONTAINER_CODES = new Set(['NETCTL_SANDBOX_NOT_FOUND', 'NETCTL_ENDPOINT_NOT_FOUND']);

/** Any error as the CniError a runtime gets: ours by class, anything else internal. */
export function toCniError(err: unknown): CniError {
  if (err instanceof CniError) return err;
  const spec = specOf(err);
  const message = err instanceof Error ? err.message : String(err);
  if (!spec) return new CniError(CniCode.INTERNAL, message);
  const code = UNKNOWN_CONTAINER_CODES.has(spec.code) ? CniCode.UNKNOWN_CONTAINER : CODE_OF_CLASS[spec.class];
  return new CniError(code, message, spec.code);
}

/** The store did not answer: error 50, "plugin not available" (SPEC.md "STATUS"), with why in details. */
export function storeUnavailable(message: string, err: unknown): CniError {
  return new CniError(
    CniCode.PLUGIN_NOT_AVAILABLE,
    message,
    err instanceof Error ? err.message : String(err),
  );
}

/** A zod failure on the configuration, as error 7 naming each bad field. */
export function invalidConfig(issues: readonly z.core.$ZodIssue[]): CniError {
  return new CniError(CniCode.INVALID_CONFIG, 'invalid network configuration', describeIssues(issues));
}

/** What a handler gets: the CNI_* parameters, and the configuration raw and as JSON. */
export interface CmdArgs {
  command: Verb;
  containerId: string;
  /** CNI_NETNS; '' when the runtime gave none (allowed for DEL). */
  netns: string;
  ifname: string;
  /** CNI_ARGS as given, and parsed into keys. */
  args: string;
  argsMap: Map<string, string>;
  stdin: string;
  /** The configuration as JSON (an object with a valid name and a supported cniVersion). */
  config: Record<string, unknown>;
  cniVersion: CniVersion;
}

export interface Handlers {
  /** ADD: the attachment's result as 1.1.0 (the dispatcher converts it). */
  add(args: CmdArgs): Promise<Result>;
  del(args: CmdArgs): Promise<void>;
  check(args: CmdArgs): Promise<void>;
  status(args: CmdArgs): Promise<void>;
  gc(args: CmdArgs): Promise<void>;
}

export interface CniIo {
  getenv(name: string): string | undefined;
  /** The whole of stdin (the network configuration). */
  readStdin(): Promise<string>;
  stdout(text: string): void;
  /** Unstructured notes for people (SPEC.md: "stderr can be used for unstructured output"). */
  stderr?(text: string): void;
}

// ---------------------------------------------------------------- env table

/** SPEC.md section 3: a container id starts alphanumeric, then alphanumerics, _ . - */
const CONTAINER_ID = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** pkg/utils ValidateInterfaceName: 1-15 bytes (IFNAMSIZ), not . or .., no / : or whitespace. */
function interfaceNameProblem(name: string): string | undefined {
  if (Buffer.byteLength(name) > 15) return 'is longer than 15 characters';
  if (name === '.' || name === '..') return 'is . or ..';
  if (/[/:\s]/.test(name)) return 'contains / or : or whitespace';
  return undefined;
}

interface EnvVar {
  name: string;
  /** Verbs that fail with error 4 without it (SPEC.md section 2, each verb's "Required environment parameters"). */
  requiredFor: readonly Verb[];
  /** Verbs that read it (and so check it when set). */
  usedBy: readonly Verb[];
  /** Why the value is invalid, or undefined. */
  validate?: (value: string) => string | undefined;
}

export const ENV_TABLE: readonly EnvVar[] = [
  { name: 'CNI_COMMAND', requiredFor: VERBS, usedBy: VERBS },
  {
    name: 'CNI_CONTAINERID',
    requiredFor: ['ADD', 'DEL', 'CHECK'],
    usedBy: ['ADD', 'DEL', 'CHECK'],
    validate: (v) => (CONTAINER_ID.test(v) ? undefined : 'must match [a-zA-Z0-9][a-zA-Z0-9_.-]*'),
  },
  {
    name: 'CNI_NETNS',
    // DEL works without it: the namespace may be gone already (SPEC.md "DEL").
    requiredFor: ['ADD', 'CHECK'],
    usedBy: ['ADD', 'DEL', 'CHECK'],
    validate: (v) => (v.startsWith('/') ? undefined : 'must be an absolute path to a network namespace'),
  },
  {
    name: 'CNI_IFNAME',
    requiredFor: ['ADD', 'DEL', 'CHECK'],
    usedBy: ['ADD', 'DEL', 'CHECK'],
    validate: interfaceNameProblem,
  },
  {
    name: 'CNI_ARGS',
    requiredFor: [],
    usedBy: ['ADD', 'DEL', 'CHECK'],
    validate: (v) => {
      try {
        parseCniArgs(v);
        return undefined;
      } catch (err) {
        return (err as Error).message;
      }
    },
  },
  // We delegate to no other plugin, but the spec requires it for GC.
  { name: 'CNI_PATH', requiredFor: ['GC'], usedBy: [] },
];

/** The minimum configuration version of each verb (CHECK came with 0.4.0, STATUS and GC with 1.1.0). */
const MINIMUM_VERSION: Partial<Record<Verb, string>> = { CHECK: '0.4.0', STATUS: '1.1.0', GC: '1.1.0' };

// ---------------------------------------------------------------- dispatch

function exitStatusOf(code: number): number {
  return code >= 1 && code <= 255 ? code : 1;
}

/**
 * Run one CNI call: returns the exit status (0, or the error code, which is
 * never 0). Never throws: every failure is printed as the spec's error JSON.
 */
export async function dispatch(io: CniIo, handlersOf: Handlers | (() => Promise<Handlers>)): Promise<number> {
  let version: CniVersion = CURRENT_VERSION;
  try {
    const env = readEnv(io);
    if (env.command === 'VERSION') {
      // stdin carries {"cniVersion": ...}; echo it when we speak it (SPEC.md "VERSION Success").
      const asked = safeJson(await io.readStdin())?.cniVersion;
      io.stdout(
        `${JSON.stringify({
          cniVersion: isSupportedVersion(asked) ? asked : CURRENT_VERSION,
          supportedVersions: SUPPORTED_VERSIONS,
        })}\n`,
      );
      return 0;
    }
    let stdin: string;
    try {
      stdin = await io.readStdin();
    } catch (err) {
      throw new CniError(
        CniCode.IO_FAILURE,
        'error reading the network configuration from stdin',
        String(err),
      );
    }
    if (Buffer.byteLength(stdin) > MAX_CONFIG_BYTES) {
      throw new CniError(
        CniCode.IO_FAILURE,
        'network configuration on stdin is too large',
        `more than ${MAX_CONFIG_BYTES} bytes`,
      );
    }
    const config = decodeConfig(stdin);
    version = config.cniVersion as CniVersion;
    const minimum = MINIMUM_VERSION[env.command];
    if (minimum && !versionAtLeast(version, minimum)) {
      throw new CniError(
        CniCode.INCOMPATIBLE_VERSION,
        `config version does not allow ${env.command}`,
        `${env.command} needs cniVersion ${minimum} or later; the configuration has ${version}`,
      );
    }
    // CNI_ARGS is checked by readEnv for the verbs that read it; the others see ''.
    const args: CmdArgs = { ...env, argsMap: parseCniArgs(env.args), stdin, config, cniVersion: version };
    const handlers = typeof handlersOf === 'function' ? await handlersOf() : handlersOf;
    switch (env.command) {
      case 'ADD': {
        const result = await handlers.add(args);
        io.stdout(`${JSON.stringify(convertResult(result, version))}\n`);
        break;
      }
      case 'DEL':
        await handlers.del(args);
        break;
      case 'CHECK':
        await handlers.check(args);
        break;
      case 'STATUS':
        await handlers.status(args);
        break;
      case 'GC':
        await handlers.gc(args);
        break;
    }
    return 0;
  } catch (err) {
    const e = toCniError(err);
    io.stdout(
      `${JSON.stringify({ cniVersion: version, code: e.code, msg: e.msg, ...(e.details ? { details: e.details } : {}) })}\n`,
    );
    return exitStatusOf(e.code);
  }
}

interface Env {
  command: Verb;
  containerId: string;
  netns: string;
  ifname: string;
  args: string;
}

function readEnv(io: CniIo): Env {
  const raw = io.getenv('CNI_COMMAND') ?? '';
  if (raw !== '' && !(VERBS as readonly string[]).includes(raw)) {
    throw new CniError(
      CniCode.INVALID_ENVIRONMENT,
      `unknown CNI_COMMAND: ${raw}`,
      `expected one of ${VERBS.join(', ')}`,
    );
  }
  const command = raw as Verb;
  const missing: string[] = [];
  const values = new Map<string, string>();
  for (const v of ENV_TABLE) {
    const value = io.getenv(v.name) ?? '';
    // A verb sees only what it reads: an unchecked value never reaches a handler.
    if (v.usedBy.includes(command)) values.set(v.name, value);
    if (value === '') {
      if (v.name === 'CNI_COMMAND' || v.requiredFor.includes(command)) missing.push(v.name);
    } else if (v.validate && v.usedBy.includes(command)) {
      const problem = v.validate(value);
      if (problem)
        throw new CniError(
          CniCode.INVALID_ENVIRONMENT,
          `invalid ${v.name}`,
          `${v.name}=${JSON.stringify(value)} ${problem}`,
        );
    }
  }
  if (missing.length) {
    throw new CniError(CniCode.INVALID_ENVIRONMENT, `required env variables [${missing.join(',')}] missing`);
  }
  const get = (name: string) => values.get(name) ?? '';
  return {
    command,
    containerId: get('CNI_CONTAINERID'),
    netns: get('CNI_NETNS'),
    ifname: get('CNI_IFNAME'),
    args: get('CNI_ARGS'),
  };
}

function safeJson(text: string): Record<string, unknown> | undefined {
  if (nestsDeeperThan(text)) return undefined;
  try {
    const value: unknown = JSON.parse(text);
    return value && typeof value === 'object' && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/** SPEC.md section 1: a network name starts alphanumeric, then alphanumerics, _ . - */
const NETWORK_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** skel's validateConfig plus the version check: JSON (6), a valid name (7), a version we speak (1). */
function decodeConfig(stdin: string): Record<string, unknown> & { cniVersion: string } {
  let value: unknown;
  if (nestsDeeperThan(stdin))
    throw new CniError(
      CniCode.DECODING_FAILURE,
      'error decoding the network configuration',
      `nested deeper than ${MAX_JSON_DEPTH} levels`,
    );
  try {
    value = JSON.parse(stdin);
  } catch (err) {
    throw new CniError(
      CniCode.DECODING_FAILURE,
      'error decoding the network configuration',
      (err as Error).message,
    );
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw new CniError(
      CniCode.DECODING_FAILURE,
      'error decoding the network configuration',
      'not a JSON object',
    );
  }
  const config = value as Record<string, unknown>;
  if (config.name === undefined || config.name === '')
    throw new CniError(CniCode.INVALID_CONFIG, 'missing network name');
  if (typeof config.name !== 'string' || !NETWORK_NAME.test(config.name)) {
    throw new CniError(
      CniCode.INVALID_CONFIG,
      'invalid characters found in network name',
      String(config.name),
    );
  }
  // A configuration without cniVersion is 0.1.0 (pkg/version ConfigDecoder), which we do not speak.
  const version = config.cniVersion ?? '0.1.0';
  if (typeof version !== 'string') {
    throw new CniError(
      CniCode.DECODING_FAILURE,
      'error decoding the network configuration',
      'cniVersion is not a string',
    );
  }
  if (!isSupportedVersion(version)) {
    throw new CniError(
      CniCode.INCOMPATIBLE_VERSION,
      'incompatible CNI versions',
      `config is ${JSON.stringify(version)}, plugin supports [${SUPPORTED_VERSIONS.join(' ')}]`,
    );
  }
  return { ...config, cniVersion: version };
}
