/**
 * Errors on the netctl REST API: every failure leaves as the registry's
 * `{code, message, class}` with the class's HTTP status (docs/errors.md), so
 * the CLI's client can rebuild the very error the controller threw.
 */
import { maxHeaderSize, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
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

/** fastify's limit on a path parameter (a name or id: 64 at most, 100 is fastify's default). */
export const MAX_PARAM_LENGTH = 100;

/**
 * The exceptions to "status = the class's status": a body over the limit
 * is answered 413 and headers over node's limit 431, the statuses HTTP has
 * for them (and what fastify and node send), though their class is
 * badRequest.
 */
const STATUS_BY_CODE: Record<string, number> = {
  NETCTL_REQUEST_TOO_LARGE: 413,
  NETCTL_HEADERS_TOO_LARGE: 431,
};

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
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return new Errors.InvalidRequest(
        `a name or id in the path is longer than ${MAX_PARAM_LENGTH} characters`,
      );
    case 'FST_ERR_BAD_URL':
      return new Errors.InvalidRequest('the path is not a valid URL (bad percent-encoding)');
  }
  // Any other 4xx fastify raises (e.g. a bad URL encoding) is the caller's fault.
  if (e?.statusCode && e.statusCode >= 400 && e.statusCode < 500)
    return new Errors.InvalidRequest(e.message ?? 'bad request');
  return new Errors.Internal((err as Error | undefined)?.message ?? String(err));
}

/**
 * What node's HTTP parser met before there was a request to route
 * (fastify's clientErrorHandler): headers over its limit, a request line
 * or header that is not HTTP, a request that took too long to arrive.
 */
export function clientError(err: NodeJS.ErrnoException): Error {
  if (err.code === 'HPE_HEADER_OVERFLOW') return new Errors.HeadersTooLarge(maxHeaderSize);
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT')
    return new Errors.InvalidRequest('the request took too long to arrive');
  return new Errors.InvalidRequest(`not an HTTP/1.1 request: ${err.code ?? err.message}`);
}

/**
 * Answer a client error on the raw socket in `format` and close it. Nothing
 * when the client is gone (a reset, a socket already closed).
 */
export function answerClientError(
  err: NodeJS.ErrnoException,
  socket: Duplex,
  format: (err: Error) => { status: number; body: unknown },
): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  if (socket.writable) {
    const { status, body } = format(clientError(err));
    const text = JSON.stringify(body);
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
    );
  }
  socket.destroy();
}

/** The HTTP status an error of this code and class is answered with. */
export const httpStatus = (code: string, errorClass: ErrorClass): number =>
  STATUS_BY_CODE[code] ?? HTTP_STATUS[errorClass];

export function errorReply(err: Error): { status: number; body: ErrorBody } {
  const spec = specOf(err) ?? { code: 'NETCTL_INTERNAL', class: 'internal' as const };
  return {
    status: httpStatus(spec.code, spec.class),
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
