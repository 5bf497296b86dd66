/**
 * The daemon's fastify instance, shared by every protocol area (the netctl
 * REST API, the Docker plugin protocol): zod validation, JSON bodies
 * with or without a Content-Type, a body limit, quiet request logs. Each
 * area is a plugin with its own routes and its own error format.
 */
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  LogController,
} from 'fastify';
import { pino } from 'pino';
import { MAX_JSON_DEPTH, nestsDeeperThan } from '../core/json-depth.js';
import { Errors } from '../errors.js';
import { type Logger, log } from '../log.js';
import {
  answerClientError,
  DEFAULT_BODY_LIMIT,
  errorReply,
  MAX_PARAM_LENGTH,
  netctlErrorHandler,
  toRegistryError,
  validatorCompiler,
} from './errors.js';

export interface ServerOptions {
  /** pino logger for the server (default: src/log.ts's, component "api"); false for none. */
  logger?: Logger | false;
  /** Largest request body accepted, in bytes (default 1 MiB). */
  bodyLimit?: number;
  /**
   * The netctl-format error and not-found handlers at the root (default
   * true). False for an area served at the root that answers in its own
   * format (Docker's plugin protocol): fastify allows one not-found
   * handler per prefix.
   */
  rootHandlers?: boolean;
  /**
   * How an error met before routing is answered (node's parser: headers
   * too large, not HTTP; fastify's router: a bad URL encoding, a path
   * parameter too long): netctl's registry body by default.
   */
  errorFormat?: (err: Error) => { status: number; body: unknown };
}

/** Per-request lines at debug, not info: a busy daemon would log two lines per call. */
class QuietLogController extends LogController {
  override incomingRequest(request: Parameters<LogController['incomingRequest']>[0]): void {
    request.log.debug({ method: request.method, url: request.url }, 'incoming request');
  }

  override requestCompleted(
    _error: unknown,
    _request: unknown,
    reply: Parameters<LogController['requestCompleted']>[2],
  ): void {
    reply.log.debug({ statusCode: reply.statusCode, ms: reply.elapsedTime }, 'request completed');
  }
}

export function createServer(options: ServerOptions = {}): FastifyInstance {
  const bodyLimit = options.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const format = options.errorFormat ?? errorReply;
  const logger = options.logger === undefined ? log.child({ component: 'api' }) : options.logger;
  const app: FastifyInstance = Fastify({
    bodyLimit,
    // A silent pino rather than `logger: false`, so the instance has one logger type either way.
    loggerInstance: (logger || pino({ level: 'silent' })) as FastifyBaseLogger,
    logController: new QuietLogController(),
    maxParamLength: MAX_PARAM_LENGTH,
    clientErrorHandler: (err, socket) => answerClientError(err, socket, format),
    frameworkErrors: (err, _request, reply) => {
      const { status, body } = format(toRegistryError(err, bodyLimit));
      return (reply as FastifyReply).status(status).send(body);
    },
  });

  app.setValidatorCompiler(validatorCompiler);

  // Docker's plugin client POSTs JSON with no Content-Type at all (and
  // fastify answers 415 to a body it has no parser for), so every body is
  // parsed as JSON, with fastify's own prototype-poisoning-safe parser.
  app.removeAllContentTypeParsers();
  const json = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('*', { parseAs: 'string' }, (request, body, done) => {
    if (nestsDeeperThan(body as string))
      return done(new Errors.InvalidRequest(`body nests deeper than ${MAX_JSON_DEPTH} levels`), undefined);
    return json(request, body as string, done);
  });

  if (options.rootHandlers === false) return app;
  // Defaults for anything outside a protocol plugin; each plugin sets its own.
  app.setErrorHandler(netctlErrorHandler(bodyLimit));
  app.setNotFoundHandler((request, reply) => {
    const { status, body } = errorReply(new Errors.RouteNotFound(request.method, request.url));
    return reply.status(status).send(body);
  });
  return app;
}
