/**
 * Errors on the netctl REST API: every failure leaves as the registry's
 * `{code, message, class}` with the class's HTTP status (docs/errors.md), so
 * the CLI's client can rebuild the very error the controller threw.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import type { FastifySchemaCompiler } from 'fastify/types/schema.js';
import type { z } from 'zod';
import { describeIssues } from '../core/validate.js';
import { type ErrorClass, Errors, HTTP_STATUS, specOf } from '../errors.js';

export interface ErrorBody {
  code: string;
  message: string;
  class: ErrorClass;
}

export const DEFAULT_BODY_LIMIT = 1024 * 1024;

/**
 * The one exception to "status = the class's status": a body over the limit
 * is answered 413, the status HTTP has for it (and what fastify itself
 * sends), though its class is badRequest.
 */
const STATUS_BY_CODE: Record<string, number> = { NETCTL_REQUEST_TOO_LARGE: 413 };

/** Translate fastify's own request errors (parsing, limits) into registry errors. */
export function toRegistryError(err: unknown, bodyLimit: number): Error {
  if (specOf(err)) return err as Error;
  const e = err as Partial<FastifyError> | undefined;
  switch (e?.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new Errors.RequestTooLarge(bodyLimit);
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new Errors.InvalidRequest('body is not valid JSON');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new Errors.InvalidRequest('body is empty but its content type is JSON');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new Errors.InvalidRequest('body size does not match Content-Length');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new Errors.InvalidRequest('malformed Content-Type header');
  }
  // Any other 4xx fastify raises (e.g. a bad URL encoding) is the caller's fault.
  if (e?.statusCode && e.statusCode >= 400 && e.statusCode < 500)
    return new Errors.InvalidRequest(e.message ?? 'bad request');
  return new Errors.Internal((err as Error | undefined)?.message ?? String(err));
}

export function errorReply(err: Error): { status: number; body: ErrorBody } {
  const spec = specOf(err) ?? { code: 'NETCTL_INTERNAL', class: 'internal' as const };
  return {
    status: STATUS_BY_CODE[spec.code] ?? HTTP_STATUS[spec.class],
    body: { code: spec.code, message: err.message, class: spec.class },
  };
}

export function netctlErrorHandler(bodyLimit: number) {
  return (err: unknown, request: FastifyRequest, reply: FastifyReply) => {
    const mapped = toRegistryError(err, bodyLimit);
    const { status, body } = errorReply(mapped);
    if (body.class === 'internal') request.log.error({ err }, 'request failed: %s', (err as Error)?.message);
    else request.log.debug({ code: body.code }, body.message);
    return reply.status(status).send(body);
  };
}

/**
 * fastify-type-provider-zod's validatorCompiler, except that a failure is
 * NETCTL_INVALID_REQUEST worded by describeIssues (which needs the input in
 * each issue, hence reportInput), not a list of JSON-schema-like issues.
 */
export const validatorCompiler: FastifySchemaCompiler<z.ZodType> =
  ({ schema }) =>
  (data) => {
    const result = schema.safeParse(data, { reportInput: true });
    if (result.success) return { value: result.data };
    // fastify leaves a request without a body as null.
    if (data === null || data === undefined)
      return { error: new Errors.InvalidRequest('a JSON body is required') };
    return { error: new Errors.InvalidRequest(describeIssues(result.error.issues)) };
  };
