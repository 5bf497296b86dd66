/**
 * The Docker plugin protocol area of the daemon (docs/docker.md): one unix
 * socket per plugin in Docker's plugin directory, because Docker names a
 * remote driver after its socket — `netctl-bridge.sock` is the network
 * driver `netctl-bridge` (`netctl-overlay.sock` `netctl-overlay`), `netctl.sock` the IPAM driver `netctl`. Each
 * socket is a fastify instance of its own (the shared setup of app.ts) with
 * this area's plugin: its routes, its `{"Err": ...}` errors and its
 * not-found answer; all share the daemon's one controller (its DockerApi).
 *
 * Plugin.Activate and the capability calls answer from constants and the
 * drivers' configuration, never the store: dockerd calls them while it
 * starts, and a plugin that hangs there hangs dockerd.
 */
import { join } from 'node:path';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { DockerApi } from '../../controller/api.js';
import { Errors, isCode } from '../../errors.js';
import { createServer, type ServerOptions } from '../app.js';
import { DEFAULT_BODY_LIMIT, toRegistryError } from '../errors.js';
import { listenUnix } from '../listen.js';
import { ipamDriverRoutes } from './ipam-driver.js';
import { networkDriverRoutes } from './network-driver.js';
import { PLUGIN_CONTENT_TYPE } from './protocol.js';

export type DockerPlugin =
  | { name: string; implements: 'NetworkDriver'; driver: string }
  | { name: string; implements: 'IpamDriver' };

/** The plugins the daemon serves, each on `<dir>/<name>.sock`. */
export const DOCKER_PLUGINS: readonly DockerPlugin[] = [
  { name: 'netctl-bridge', implements: 'NetworkDriver', driver: 'bridge' },
  { name: 'netctl', implements: 'IpamDriver' },
  { name: 'netctl-overlay', implements: 'NetworkDriver', driver: 'overlay' },
];

export interface DockerAreaOptions {
  api: DockerApi;
  plugin: DockerPlugin;
  bodyLimit?: number;
}

/**
 * Every failure answers `{"Err": message}` (docs/remote.md) with status
 * 500, whatever its class: dockerd reads a 404 as "method not implemented"
 * and carries on as if it had succeeded (ProgramExternalConnectivity), so
 * 404 is kept for routes that do not exist.
 */
const dockerErrorReply = (err: Error) => ({ status: 500, body: { Err: err.message } });

function dockerErrorHandler(bodyLimit: number) {
  return (err: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    const mapped = toRegistryError(err, bodyLimit);
    if (isCode(mapped, Errors.Internal))
      request.log.error({ err }, 'docker call %s failed: %s', request.url, err.message);
    else request.log.info({ call: request.url, err: mapped.message }, 'docker call refused');
    const { status, body } = dockerErrorReply(mapped);
    return reply.status(status).send(body);
  };
}

export const dockerPluginArea: FastifyPluginAsyncZod<DockerAreaOptions> = async (app, options) => {
  const { plugin, api } = options;
  app.setErrorHandler(dockerErrorHandler(options.bodyLimit ?? DEFAULT_BODY_LIMIT));
  app.setNotFoundHandler((request, reply) =>
    reply.status(404).send({ Err: new Errors.RouteNotFound(request.method, request.url).message }),
  );
  // Docker's calls and what they carried, for `--log-level debug`.
  app.addHook('preHandler', async (request) => {
    request.log.debug({ call: request.url, body: request.body }, 'docker call');
  });
  app.addHook('onSend', async (_request, reply, payload) => {
    reply.header('content-type', PLUGIN_CONTENT_TYPE);
    return payload;
  });

  // Each plugin answers Plugin.Activate itself (the network driver does more there).
  if (plugin.implements === 'NetworkDriver') {
    await app.register(networkDriverRoutes, { docker: api.docker, driver: plugin.driver });
  } else {
    await app.register(ipamDriverRoutes, { ipam: api.dockerIpam });
  }
};

/** One plugin's server: the shared fastify setup with the Docker area at the root. */
export function buildDockerPluginServer(
  api: DockerApi,
  plugin: DockerPlugin,
  options: ServerOptions = {},
): FastifyInstance {
  // The area answers unknown routes itself, at the root: no default handlers there.
  const app = createServer({ ...options, rootHandlers: false, errorFormat: dockerErrorReply });
  app.register(dockerPluginArea, {
    api,
    plugin,
    ...(options.bodyLimit ? { bodyLimit: options.bodyLimit } : {}),
  });
  return app;
}

export interface DockerPluginSockets {
  sockets: string[];
  close(): Promise<void>;
}

/** Serve every plugin of DOCKER_PLUGINS on `<dir>/<name>.sock` (mode 0660). */
export async function listenDockerPlugins(
  api: DockerApi,
  dir: string,
  options: ServerOptions = {},
): Promise<DockerPluginSockets> {
  const apps: FastifyInstance[] = [];
  const sockets: string[] = [];
  const close = async () => {
    for (const app of apps.splice(0)) await app.close();
  };
  try {
    for (const plugin of DOCKER_PLUGINS) {
      const app = buildDockerPluginServer(api, plugin, options);
      apps.push(app);
      const socket = join(dir, `${plugin.name}.sock`);
      await listenUnix(app, socket, '--docker-plugins');
      sockets.push(socket);
    }
  } catch (err) {
    await close();
    throw err;
  }
  return { sockets, close };
}
