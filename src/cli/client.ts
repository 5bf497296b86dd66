/**
 * NetctlApi over the daemon's REST API (docs/api.md), on its unix socket.
 * Error bodies become the registry's errors again (same code, class and
 * message), so the CLI prints and exits the same way with or without a
 * daemon. Nothing listening on the socket is NETCTL_DAEMON_UNAVAILABLE with
 * the connect error as its cause: see isNoDaemon. So is a daemon that takes
 * longer than the deadline to answer a request: a wedged daemon must not
 * hang every command (and every script) that asks it something.
 */
import { request as httpRequest } from 'node:http';
import type {
  CheckReport,
  GcAction,
  GcReport,
  Health,
  HostStatus,
  NetctlApi,
  NetworkDetails,
  SandboxDetails,
} from '../controller/api.js';
import type { Endpoint, Network, Sandbox } from '../core/model.js';
import type { ConnectRequest, CreateNetworkRequest, CreateSandboxRequest } from '../core/schemas.js';
import { type ErrorClass, Errors, isCode } from '../errors.js';

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

const NO_DAEMON_CODES = new Set(['ENOENT', 'ECONNREFUSED']);

/**
 * How long a request may take, whole: connect, send, the complete answer.
 * A daemon answers in milliseconds; gc or repair of a large state may take
 * seconds. A minute is a daemon that will not answer.
 */
export const DEFAULT_TIMEOUT_SECONDS = 60;

/** The daemon is not there at all (no socket, or nobody listening): fall back to in-process. */
export function isNoDaemon(err: unknown): boolean {
  const cause = (err as { cause?: { code?: string } } | null)?.cause;
  return (
    isCode(err, Errors.DaemonUnavailable) &&
    typeof cause?.code === 'string' &&
    NO_DAEMON_CODES.has(cause.code)
  );
}

const constructors = new Map(Object.values(Errors).map((Ctor) => [new Ctor().code, Ctor]));

/** The registry error an error body stands for, with the daemon's own message. */
export function errorFromBody(status: number, body: unknown): Error {
  const b = body as { code?: unknown; message?: unknown; class?: unknown } | null;
  if (typeof b?.code !== 'string' || typeof b.message !== 'string')
    return new Errors.Internal(`daemon answered ${status} with ${JSON.stringify(body)?.slice(0, 200)}`);
  const Ctor = constructors.get(b.code);
  if (Ctor) {
    const err = new Ctor();
    err.message = b.message;
    return err;
  }
  // A code this CLI does not know (a newer daemon): keep it and the status.
  return Object.assign(new Error(b.message), {
    code: b.code,
    statusCode: status,
    class: b.class as ErrorClass,
  });
}

const enc = encodeURIComponent;

export class HttpApi implements NetctlApi {
  constructor(
    readonly socketPath: string,
    readonly timeoutSeconds = DEFAULT_TIMEOUT_SECONDS,
  ) {}

  request<T>(method: Method, path: string, body?: unknown): Promise<T> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    // One deadline for the whole request, not the socket's idle timeout,
    // which a daemon sending a byte now and then would keep resetting.
    const deadline = AbortSignal.timeout(this.timeoutSeconds * 1000);
    const lost = (err: NodeJS.ErrnoException) => {
      const reason = deadline.aborted
        ? `no answer within ${this.timeoutSeconds} s`
        : NO_DAEMON_CODES.has(err.code ?? '')
          ? `no daemon listening (${err.code})`
          : err.code === 'EACCES'
            ? 'permission denied (run as root)'
            : err.message;
      return new Errors.DaemonUnavailable(this.socketPath, reason, { cause: err });
    };
    return new Promise<T>((resolve, reject) => {
      const req = httpRequest(
        {
          socketPath: this.socketPath,
          method,
          path,
          signal: deadline,
          headers: {
            accept: 'application/json',
            ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('error', (err) => reject(lost(err)));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown;
            try {
              parsed = text ? JSON.parse(text) : undefined;
            } catch {
              reject(
                new Errors.Internal(`daemon answered ${res.statusCode} with non-JSON: ${text.slice(0, 200)}`),
              );
              return;
            }
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) resolve(parsed as T);
            else reject(errorFromBody(status, parsed));
          });
        },
      );
      req.on('error', (err) => reject(lost(err)));
      req.end(payload);
    });
  }

  createNetwork(request: CreateNetworkRequest): Promise<Network> {
    return this.request('POST', '/v1/networks', request);
  }

  listNetworks(): Promise<Network[]> {
    return this.request('GET', '/v1/networks');
  }

  inspectNetwork(ref: string): Promise<NetworkDetails> {
    return this.request('GET', `/v1/networks/${enc(ref)}`);
  }

  deleteNetwork(ref: string): Promise<Network> {
    return this.request('DELETE', `/v1/networks/${enc(ref)}`);
  }

  async pruneNetworks(): Promise<string[]> {
    return (await this.request<{ networksDeleted: string[] }>('POST', '/v1/networks/prune')).networksDeleted;
  }

  createSandbox(request: CreateSandboxRequest): Promise<Sandbox> {
    return this.request('POST', '/v1/sandboxes', request);
  }

  listSandboxes(): Promise<Sandbox[]> {
    return this.request('GET', '/v1/sandboxes');
  }

  inspectSandbox(ref: string): Promise<SandboxDetails> {
    return this.request('GET', `/v1/sandboxes/${enc(ref)}`);
  }

  deleteSandbox(ref: string, options: { ifEmpty?: boolean } = {}): Promise<Sandbox> {
    return this.request('DELETE', `/v1/sandboxes/${enc(ref)}${options.ifEmpty ? '?ifEmpty=true' : ''}`);
  }

  setSandboxPid(ref: string, pid: number): Promise<Sandbox> {
    return this.request('PUT', `/v1/sandboxes/${enc(ref)}/pid`, { pid });
  }

  connect(request: ConnectRequest): Promise<Endpoint> {
    const { network, ...body } = request;
    return this.request('POST', `/v1/networks/${enc(network)}/connect`, body);
  }

  disconnect(network: string, sandbox: string): Promise<Endpoint> {
    return this.request('POST', `/v1/networks/${enc(network)}/disconnect`, { sandbox });
  }

  gc(options: { dryRun: boolean }): Promise<GcReport> {
    return this.request('POST', '/v1/gc', { dryRun: options.dryRun });
  }

  health(): Promise<Health> {
    return this.request('GET', '/v1/health');
  }

  listHosts(): Promise<HostStatus[]> {
    return this.request('GET', '/v1/hosts');
  }

  check(network: string, sandbox?: string): Promise<CheckReport> {
    const query = sandbox === undefined ? '' : `?sandbox=${enc(sandbox)}`;
    return this.request('GET', `/v1/networks/${enc(network)}/check${query}`);
  }

  async repair(network?: string): Promise<GcAction[]> {
    const body = network === undefined ? {} : { network };
    return (await this.request<{ actions: GcAction[] }>('POST', '/v1/repair', body)).actions;
  }
}
