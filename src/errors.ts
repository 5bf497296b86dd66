/**
 * The one registry of netctl's coded errors, for every layer and every way
 * in (HTTP API, Docker plugin, CNI, CLI). Each error has a stable code, a
 * message template and a class; each protocol maps the class its own way
 * (HTTP status, Docker `{"Err": ...}`, CNI error code, CLI exit status).
 * docs/errors.md lists them all, and a test keeps the two in step.
 *
 * Built on @fastify/error (fastify lib/errors.js): `new Errors.NetworkNotFound('web')`.
 */
import createError, { type FastifyErrorConstructor } from '@fastify/error';

export type ErrorClass = 'badRequest' | 'notFound' | 'conflict' | 'unavailable' | 'internal';

export const HTTP_STATUS: Record<ErrorClass, number> = {
  badRequest: 400,
  notFound: 404,
  conflict: 409,
  unavailable: 503,
  internal: 500,
};

export interface ErrorSpec {
  code: string;
  message: string;
  class: ErrorClass;
}

const registry = new Map<string, ErrorSpec>();

/** Each registry error's code, by its constructor (isCode). */
const codeOfKind = new Map<FastifyErrorConstructor, string>();

function define(code: string, message: string, errorClass: ErrorClass): FastifyErrorConstructor {
  if (registry.has(code)) throw new Error(`error code ${code} defined twice`);
  registry.set(code, { code, message, class: errorClass });
  const kind = createError(code, message, HTTP_STATUS[errorClass]);
  codeOfKind.set(kind, code);
  return kind;
}

export const Errors = {
  // Input that is malformed or out of range.
  InvalidRequest: define('NETCTL_INVALID_REQUEST', 'invalid request: %s', 'badRequest'),
  InvalidCidr: define(
    'NETCTL_INVALID_CIDR',
    '%s is not a valid CIDR (expected e.g. 10.1.0.0/24 or fd00::/64)',
    'badRequest',
  ),
  InvalidAddress: define('NETCTL_INVALID_ADDRESS', '%s is not a valid IP address', 'badRequest'),
  InvalidOption: define('NETCTL_INVALID_OPTION', 'invalid option %s: %s', 'badRequest'),
  SharedStoreRequired: define(
    'NETCTL_SHARED_STORE_REQUIRED',
    '%s networks span hosts and need a store every host shares: start each daemon with --kv redis://HOST:6379/0 (this one runs on %s)',
    'badRequest',
  ),
  GatewayOutsideSubnet: define(
    'NETCTL_GATEWAY_OUTSIDE_SUBNET',
    'gateway %s is not inside subnet %s',
    'badRequest',
  ),
  AddressOutsidePool: define(
    'NETCTL_ADDRESS_OUT_OF_RANGE',
    'address %s is not inside subnet %s',
    'badRequest',
  ),
  RequestTooLarge: define('NETCTL_REQUEST_TOO_LARGE', 'request body is larger than %s bytes', 'badRequest'),
  HeadersTooLarge: define(
    'NETCTL_HEADERS_TOO_LARGE',
    'request line and headers are larger than %s bytes',
    'badRequest',
  ),
  InvalidNetns: define('NETCTL_INVALID_NETNS', 'invalid network namespace: %s', 'badRequest'),
  SubnetTooBroad: define('NETCTL_SUBNET_TOO_BROAD', 'subnet %s is refused: %s', 'badRequest'),
  ConfirmationRequired: define(
    'NETCTL_CONFIRMATION_REQUIRED',
    '%s needs confirmation: pass -f/--force (no terminal to ask on)',
    'badRequest',
  ),

  // Things that are not there.
  NetworkNotFound: define('NETCTL_NETWORK_NOT_FOUND', 'network %s not found', 'notFound'),
  EndpointNotFound: define('NETCTL_ENDPOINT_NOT_FOUND', 'endpoint %s not found', 'notFound'),
  SandboxNotFound: define('NETCTL_SANDBOX_NOT_FOUND', 'sandbox %s not found', 'notFound'),
  PoolNotFound: define('NETCTL_POOL_NOT_FOUND', 'address pool %s not found', 'notFound'),
  DriverNotFound: define(
    'NETCTL_DRIVER_NOT_FOUND',
    'network driver %s not found (available: %s)',
    'notFound',
  ),
  RouteNotFound: define('NETCTL_ROUTE_NOT_FOUND', 'no API route %s %s', 'notFound'),

  // Things in the way.
  NetworkExists: define('NETCTL_NETWORK_EXISTS', 'network with name %s already exists', 'conflict'),
  SandboxExists: define('NETCTL_SANDBOX_EXISTS', 'sandbox with name %s already exists', 'conflict'),
  EndpointExists: define(
    'NETCTL_ENDPOINT_EXISTS',
    'endpoint with name %s already exists in network %s',
    'conflict',
  ),
  InterfaceExists: define('NETCTL_INTERFACE_EXISTS', 'interface %s already exists in sandbox %s', 'conflict'),
  PoolOverlap: define('NETCTL_POOL_OVERLAP', 'subnet %s overlaps with %s', 'conflict'),
  AddressInUse: define('NETCTL_ADDRESS_IN_USE', 'address %s is already in use', 'conflict'),
  NoAvailableAddress: define('NETCTL_NO_AVAILABLE_ADDRESS', 'no available address in %s', 'conflict'),
  NoAvailablePool: define('NETCTL_NO_AVAILABLE_POOL', 'no available pool in address space %s', 'conflict'),
  NetworkInUse: define(
    'NETCTL_NETWORK_IN_USE',
    'network %s has active endpoints (%s): disconnect them first',
    'conflict',
  ),
  SandboxInUse: define('NETCTL_SANDBOX_IN_USE', 'sandbox %s has endpoints (%s): it stays', 'conflict'),
  PoolInUse: define('NETCTL_POOL_IN_USE', 'address pool %s still has addresses in use', 'conflict'),
  NetworkFull: define(
    'NETCTL_NETWORK_FULL',
    'network %s is full: its bridge has %s ports, the most the Linux bridge takes',
    'conflict',
  ),
  PortInUse: define('NETCTL_PORT_IN_USE', 'host port %s is already published by %s', 'conflict'),
  VniInUse: define('NETCTL_VNI_IN_USE', 'VNI %s is already taken by network %s', 'conflict'),
  Conflict: define('NETCTL_CONFLICT', 'concurrent update of %s: try again', 'conflict'),
  DockerNetwork: define('NETCTL_DOCKER_NETWORK', 'network %s belongs to Docker network %s: %s', 'conflict'),
  NotAdoptable: define(
    'NETCTL_NOT_ADOPTABLE',
    'netctl network %s cannot be Docker network %s: %s',
    'conflict',
  ),
  NotOwned: define('NETCTL_NOT_OWNED', "%s exists and is not netctl's: nothing was changed", 'conflict'),
  SubnetOverlapsRoute: define(
    'NETCTL_SUBNET_OVERLAPS_ROUTE',
    "subnet %s overlaps the host's route %s: choose another subnet",
    'conflict',
  ),
  StoreMismatch: define(
    'NETCTL_STORE_MISMATCH',
    "this host's netctl daemon runs on %s, not %s: give the daemon's store (or no --kv), so state is never split",
    'conflict',
  ),
  DaemonRunning: define(
    'NETCTL_DAEMON_RUNNING',
    'another netctl daemon is already listening on %s',
    'conflict',
  ),

  // Something we depend on is down.
  StoreUnavailable: define('NETCTL_STORE_UNAVAILABLE', 'state store %s is unavailable: %s', 'unavailable'),
  DaemonUnavailable: define(
    'NETCTL_DAEMON_UNAVAILABLE',
    'netctl daemon at %s is not answering: %s',
    'unavailable',
  ),

  // Ours.
  Internal: define('NETCTL_INTERNAL', 'internal error: %s', 'internal'),
} as const;

/**
 * The state layers (src/kv, src/ipam) sit below this registry's users and
 * throw their own typed errors with `kv.*` / `ipam.*` codes; each is
 * reported as the registry error it means (docs/errors.md, "Lower layers").
 */
export const LAYER_CODES: Record<string, string> = {
  'ipam.invalid_cidr': 'NETCTL_INVALID_CIDR',
  'ipam.invalid_address': 'NETCTL_INVALID_ADDRESS',
  'ipam.invalid_request': 'NETCTL_INVALID_REQUEST',
  'ipam.unknown_address_space': 'NETCTL_INVALID_REQUEST',
  'ipam.pool_overlap': 'NETCTL_POOL_OVERLAP',
  'ipam.pool_not_found': 'NETCTL_POOL_NOT_FOUND',
  'ipam.pool_in_use': 'NETCTL_POOL_IN_USE',
  'ipam.no_available_pool': 'NETCTL_NO_AVAILABLE_POOL',
  'ipam.no_available_ip': 'NETCTL_NO_AVAILABLE_ADDRESS',
  'ipam.address_in_use': 'NETCTL_ADDRESS_IN_USE',
  'ipam.address_out_of_range': 'NETCTL_ADDRESS_OUT_OF_RANGE',
  'ipam.contention': 'NETCTL_CONFLICT',
  'kv.conflict': 'NETCTL_CONFLICT',
  'kv.unavailable': 'NETCTL_STORE_UNAVAILABLE',
  'kv.invalid_key': 'NETCTL_INVALID_REQUEST',
  'kv.invalid_url': 'NETCTL_INVALID_REQUEST',
  'kv.store_mismatch': 'NETCTL_STORE_MISMATCH',
  'kv.backend': 'NETCTL_INTERNAL',
  'kernel.not_owned': 'NETCTL_NOT_OWNED',
};

/** Every registered error, in definition order. */
export function errorSpecs(): ErrorSpec[] {
  return [...registry.values()];
}

/** The registered spec of err, when it is one of ours or a lower layer's. */
export function specOf(err: unknown): ErrorSpec | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return undefined;
  return registry.get(code) ?? registry.get(LAYER_CODES[code] ?? '');
}

/**
 * Whether err is one of these registry errors (`isCode(err,
 * Errors.SandboxNotFound)`), by its code — also one rebuilt from a
 * daemon's answer or mapped from a lower layer's error — so a misspelt
 * code is a compile error, not a comparison that is never true.
 */
export function isCode(err: unknown, ...kinds: FastifyErrorConstructor[]): boolean {
  const code = specOf(err)?.code;
  return code !== undefined && kinds.some((kind) => codeOfKind.get(kind) === code);
}

/** The class of any error: ours by registry, anything else is internal. */
export function errorClassOf(err: unknown): ErrorClass {
  return specOf(err)?.class ?? 'internal';
}

/** An error of the notFound class, whatever the object (network, endpoint, sandbox). */
export const isNotFound = (err: unknown): boolean => errorClassOf(err) === 'notFound';

/** Work on something that may be gone already: any not-found is success (deletes are idempotent). */
export async function ignoreNotFound(work: Promise<unknown>): Promise<void> {
  try {
    await work;
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}
