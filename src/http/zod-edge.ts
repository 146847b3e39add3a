import type { FastifyInstance } from 'fastify';
import { validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { isUuidV4 } from '../shared/userid.js';
import { invalidInput } from './api-errors.js';

/**
 * Validates an input that is no route's params, query or body (a multipart form's fields, a body's metadata, a
 * spec put together from several): the first problem becomes a 400 naming the field.
 */
export function parseInput<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const r = schema.safeParse(value ?? {});
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  throw invalidInput(issue.path, issue.message);
}

/**
 * Routes declare their params, query and body as zod schemas (`schema: { params, querystring, body }`), validated by
 * the zod type provider before the handler runs (after authentication, an onRequest hook), which gets them parsed
 * and typed. The same schemas give the OpenAPI document (openapi-document.ts).
 */
export function installRouteValidation(app: FastifyInstance): void {
  app.setValidatorCompiler(validatorCompiler);
  // No body at all reads as {}: a POST with nothing to say gets its fields' defaults, or its first required field named.
  app.addHook('preValidation', async (req) => {
    if (req.body == null && req.routeOptions.schema?.body) req.body = {};
  });
}

/** A route's instance with its schemas' types: `typed(app).get(url, { schema }, handler)`. */
export const typed = (app: FastifyInstance) => app.withTypeProvider<ZodTypeProvider>();

/** A route's `:id`: a batch's, file's or request's (what it names is checked by the route). */
export const idParams = z.object({ id: z.string().min(1).max(200) });

/** A route's `:userid`: an end user's userid as the endpoint knows it (a UUID v4). */
export const useridParams = z.object({
  userid: z.string().max(64).refine(isUuidV4, { message: 'expected a UUID v4' }),
});
