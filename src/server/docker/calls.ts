/**
 * A Docker plugin as a table of calls: each row is one path of the protocol
 * (`/NetworkDriver.Join`), the zod schema its body is parsed with, and the
 * function that answers it — as libnetwork's drivers/remote/driver.go has
 * one method per call, each building a request, making one call and
 * copying the reply. Every call is a POST (docs/remote.md).
 */
import type { FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { z } from 'zod';

type App = Parameters<FastifyPluginAsyncZod>[0];

/** One call of Docker's plugin protocol, answered with shared state `Ctx`. */
export interface DockerCall<Ctx> {
  path: string;
  /** The body's schema; null for the calls whose body netctl never reads. */
  body: z.ZodType | null;
  answer(ctx: Ctx, body: unknown, request: FastifyRequest): Promise<object>;
}

/** A row of the table: answer gets the body as schema parsed it. */
export function call<Ctx, S extends z.ZodType | null>(
  path: string,
  body: S,
  answer: (
    ctx: Ctx,
    body: S extends z.ZodType ? z.output<S> : unknown,
    request: FastifyRequest,
  ) => Promise<object>,
): DockerCall<Ctx> {
  return { path, body, answer };
}

/** Serve every call of the table on app. */
export function registerCalls<Ctx>(app: App, ctx: Ctx, calls: readonly DockerCall<Ctx>[]): void {
  for (const { path, body, answer } of calls) {
    app.post(path, body ? { schema: { body } } : {}, (request) => answer(ctx, request.body, request));
  }
}
