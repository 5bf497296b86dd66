/**
 * The netctl REST API (docs/api.md): NetctlApi over HTTP, for the CLI and a
 * later web view. A thin adapter: route → zod-validated body → one NetctlApi
 * call → JSON. Errors leave as the registry's `{code, message, class}`.
 */
import type { FastifyInstance } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { CniBackend } from '../cni/plugins.js';
import type { NetctlApi } from '../controller/api.js';
import { createNetworkSchema, createSandboxSchema, sandboxPidSchema } from '../core/schemas.js';
import { createServer, type ServerOptions } from './app.js';
import { cniPlugin } from './cni.js';
import { DEFAULT_BODY_LIMIT, netctlErrorHandler } from './errors.js';
import {
  checkQuerySchema,
  connectBodySchema,
  deleteSandboxQuerySchema,
  disconnectBodySchema,
  gcBodySchema,
  refParamsSchema,
  repairBodySchema,
} from './schemas.js';

export interface NetctlApiPluginOptions {
  api: NetctlApi;
  bodyLimit?: number;
}

/** Routes under the prefix it is registered with (/v1). */
export const netctlApiPlugin: FastifyPluginAsyncZod<NetctlApiPluginOptions> = async (app, options) => {
  const { api } = options;
  app.setErrorHandler(netctlErrorHandler(options.bodyLimit ?? DEFAULT_BODY_LIMIT));

  app.get('/health', () => api.health());
  app.get('/hosts', () => api.listHosts());

  app.get('/networks', () => api.listNetworks());
  app.post('/networks', { schema: { body: createNetworkSchema } }, async (request, reply) =>
    reply.status(201).send(await api.createNetwork(request.body)),
  );
  // Static segment: wins over /networks/:ref (find-my-way), so a network named
  // "prune" is still reachable by GET and DELETE.
  app.post('/networks/prune', async () => ({ networksDeleted: await api.pruneNetworks() }));
  app.get('/networks/:ref', { schema: { params: refParamsSchema } }, (request) =>
    api.inspectNetwork(request.params.ref),
  );
  app.delete('/networks/:ref', { schema: { params: refParamsSchema } }, (request) =>
    api.deleteNetwork(request.params.ref),
  );
  app.post(
    '/networks/:ref/connect',
    { schema: { params: refParamsSchema, body: connectBodySchema } },
    async (request, reply) =>
      reply.status(201).send(await api.connect({ ...request.body, network: request.params.ref })),
  );
  app.post(
    '/networks/:ref/disconnect',
    { schema: { params: refParamsSchema, body: disconnectBodySchema } },
    (request) => api.disconnect(request.params.ref, request.body.sandbox),
  );

  app.get('/sandboxes', () => api.listSandboxes());
  app.post('/sandboxes', { schema: { body: createSandboxSchema } }, async (request, reply) =>
    reply.status(201).send(await api.createSandbox(request.body)),
  );
  app.get('/sandboxes/:ref', { schema: { params: refParamsSchema } }, (request) =>
    api.inspectSandbox(request.params.ref),
  );
  app.delete(
    '/sandboxes/:ref',
    { schema: { params: refParamsSchema, querystring: deleteSandboxQuerySchema } },
    (request) => api.deleteSandbox(request.params.ref, { ifEmpty: request.query.ifEmpty === 'true' }),
  );
  app.put('/sandboxes/:ref/pid', { schema: { params: refParamsSchema, body: sandboxPidSchema } }, (request) =>
    api.setSandboxPid(request.params.ref, request.body.pid),
  );

  app.post('/gc', { schema: { body: gcBodySchema } }, (request) => api.gc({ dryRun: request.body.dryRun }));
  app.get(
    '/networks/:ref/check',
    { schema: { params: refParamsSchema, querystring: checkQuerySchema } },
    (request) => api.check(request.params.ref, request.query.sandbox),
  );
  app.post('/repair', { schema: { body: repairBodySchema } }, async (request) => ({
    actions: await api.repair(request.body.network),
  }));
};

export interface ApiServerOptions extends ServerOptions {
  /** Serve CNI calls forwarded by the netctl-cni shim (POST /v1/cni, src/server/cni.ts) against this backend. */
  cni?: CniBackend;
}

/** The daemon's API server: the shared fastify setup with the netctl REST area at /v1. */
export function buildApiServer(api: NetctlApi, options: ApiServerOptions = {}): FastifyInstance {
  const app = createServer(options);
  app.register(netctlApiPlugin, {
    api,
    prefix: '/v1',
    ...(options.bodyLimit ? { bodyLimit: options.bodyLimit } : {}),
  });
  if (options.cni) app.register(cniPlugin, { backend: options.cni, prefix: '/v1' });
  return app;
}
