/**
 * POST /v1/cni: a CNI call forwarded by the netctl-cni shim
 * (native/cni/netctl-cni.c), run against the daemon's controller with the
 * same dispatcher the in-process plugin uses (src/cni). The answer is
 * always 200 once the request is understood: the body is exactly what the
 * plugin prints on stdout (a result, or the spec's error JSON), and the
 * `Netctl-Cni-Exit` header is the exit status the shim exits with. A
 * request the shim should never send (bad shape) gets the API's usual
 * error body, which the shim reports as CNI error 5.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { type CniBackend, PLUGIN_NAMES, runPlugin } from '../cni/plugins.js';
import { MAX_CONFIG_BYTES } from '../cni/skel.js';

export const CNI_EXIT_HEADER = 'Netctl-Cni-Exit';

export const cniRequestSchema = z.strictObject({
  /** The CNI_* variables the runtime set (the shim forwards those alone). */
  env: z.record(z.string().regex(/^CNI_[A-Z_]+$/), z.string()),
  /** stdin as the runtime wrote it: parsed by the plugin, so a decode error is CNI's error 6. */
  config: z.string(),
  /** Which plugin the shim was executed as. */
  plugin: z.enum(PLUGIN_NAMES).default('netctl-cni'),
});

export interface CniPluginOptions {
  backend: CniBackend;
}

export const cniPlugin: FastifyPluginAsyncZod<CniPluginOptions> = async (app, { backend }) => {
  // The largest configuration a plugin takes, as the shim escapes it in
  // JSON (a control character becomes six bytes), plus the CNI_* variables:
  // refusing it is the dispatcher's job (error 5), not the HTTP layer's.
  const bodyLimit = 6 * MAX_CONFIG_BYTES + 64 * 1024;
  app.post('/cni', { schema: { body: cniRequestSchema }, bodyLimit }, async (request, reply) => {
    const { env, config, plugin } = request.body;
    let stdout = '';
    const status = await runPlugin(
      plugin,
      {
        getenv: (name) => env[name],
        readStdin: async () => config,
        stdout: (text) => {
          stdout += text;
        },
        stderr: (text) => request.log.info({ plugin, command: env.CNI_COMMAND }, text.trimEnd()),
      },
      backend,
    );
    if (status !== 0) request.log.info({ plugin, command: env.CNI_COMMAND, status }, stdout.trimEnd());
    return reply.header(CNI_EXIT_HEADER, String(status)).type('application/json').send(stdout);
  });
};
