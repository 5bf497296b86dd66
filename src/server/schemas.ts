/**
 * Route schemas of the netctl REST API: the core's request schemas, reshaped
 * where the URL already carries a part (the network of a connect), plus the
 * two small bodies that exist only on the wire.
 */
import { z } from 'zod';
import { connectSchema } from '../core/schemas.js';

/** `:ref` is a network or sandbox id, name, or unique id prefix. */
export const refParamsSchema = z.object({ ref: z.string().min(1) });

/** POST /v1/networks/:ref/connect: the network is the URL's. */
export const connectBodySchema = connectSchema.omit({ network: true });

/** POST /v1/networks/:ref/disconnect. */
export const disconnectBodySchema = connectSchema.pick({ sandbox: true });

/** POST /v1/gc; no body at all means a real run. */
export const gcBodySchema = z
  .strictObject({ dryRun: z.boolean().default(false) })
  .nullish()
  .transform((body) => body ?? { dryRun: false });

/** GET /v1/networks/:ref/check?sandbox=REF. */
export const checkQuerySchema = z.strictObject({ sandbox: z.string().min(1).optional() });

/** DELETE /v1/sandboxes/:ref?ifEmpty=true. */
export const deleteSandboxQuerySchema = z.strictObject({
  ifEmpty: z.enum(['true', 'false']).optional(),
});

/** POST /v1/repair; no body (or no network) repairs every network. */
export const repairBodySchema = z
  .strictObject({ network: z.string().min(1).optional() })
  .nullish()
  .transform((body) => body ?? {});
