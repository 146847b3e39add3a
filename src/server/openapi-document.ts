import swagger from '@fastify/swagger';
import type { FastifyInstance } from 'fastify';
import { jsonSchemaTransform } from 'fastify-type-provider-zod';
import { routeKind } from '../http/auth.js';
import { PACKAGE_VERSION } from '../shared/package-version.js';

/**
 * The OpenAPI document of the HTTP API (GET /v1/openapi.json, with a token like every /v1 route), made from the
 * routes' own zod schemas: what each takes is what it checks. The API's routes only (/v1): the dashboard's pages,
 * the operator board, health and metrics are not in it. Registered before the routes, which it collects as they
 * are added.
 */
export async function installOpenApiDocument(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'chatq HTTP API',
        description:
          "OpenAI Batch API-compatible files and batches, and chatq's own records, usage, schedules and benchmark reports.",
        version: PACKAGE_VERSION,
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    transform: (document) => {
      const { url } = document;
      if (routeKind(url) !== 'api' || url === '/metrics') return { schema: { hide: true }, url };
      return jsonSchemaTransform(document);
    },
  });
  app.get('/v1/openapi.json', async () => app.swagger());
}
