import multipart from '@fastify/multipart';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { dashboardRoutes } from '../dashboard/dashboard-routes.js';
import { CSP } from '../dashboard/page-reply.js';
import { DASHBOARD_OPEN_PATHS, loginPage } from '../dashboard/sign-in-routes.js';
import type { Logger } from '../shared/logger.js';
import type { ApiDeps } from '../http/api-deps.js';
import { clientErrorHandler, frameworkErrors, installErrorHandlers } from '../http/api-errors.js';
import { createAuthenticator, installAuth, routeKind } from '../http/auth.js';
import { AuthThrottle } from '../http/auth-throttle.js';
import { BrowserSessions } from '../http/browser-sessions.js';
import { batchesRoutes } from '../api/batches-routes.js';
import { benchmarkRoutes } from '../api/benchmark-routes.js';
import { filesRoutes } from '../api/files-routes.js';
import { opsRoutes } from './ops-routes.js';
import { recordsRoutes } from '../api/records-routes.js';
import { schedulesRoutes } from '../api/schedules-routes.js';
import { installStoreGate } from './store-gate.js';
import { installRouteValidation } from '../http/zod-edge.js';
import { installOpenApiDocument } from './openapi-document.js';

/** JSON bodies (batch creation, cancel) are small; uploads have their own limit. */
const JSON_BODY_LIMIT = 1024 * 1024;
/** The operator board (bull-board): its scripts are its own files, but it sets inline styles and a <base> of its own. */
const BOARD_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'self'";

/**
 * Headers every answer gets unless its route set its own: nothing is cached (results, files and pages are private),
 * nothing is sniffed, and no page (the dashboard, the sign-in page a 401 shows, the board) can be framed by another site.
 */
function installSecurityHeaders(app: FastifyInstance): void {
  app.addHook('onSend', async (req, reply, payload) => {
    void reply.header('x-content-type-options', 'nosniff').header('x-frame-options', 'DENY');
    if (!reply.hasHeader('cache-control')) void reply.header('cache-control', 'no-store');
    if (String(reply.getHeader('content-type') ?? '').startsWith('text/html')) {
      if (!reply.hasHeader('content-security-policy'))
        void reply.header('content-security-policy', routeKind(req.routeOptions.url) === 'operator' ? BOARD_CSP : CSP);
    }
    return payload;
  });
}

/** A route the server answers: its method and its path pattern as the router matches it. */
export interface RouteEntry {
  method: string;
  url: string;
}

/** The HTTP API: OpenAI Batch-compatible files and batches, chatq's records and usage, health, metrics, board, dashboard. */
export async function buildApiServer(
  deps: ApiDeps,
  logger: Logger,
): Promise<{ app: FastifyInstance; routes: RouteEntry[] }> {
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    bodyLimit: JSON_BODY_LIMIT,
    frameworkErrors,
    clientErrorHandler,
    trustProxy: deps.config.trustProxy,
  });
  const routes: RouteEntry[] = [];
  app.addHook('onRoute', (r) => {
    for (const method of [r.method].flat()) routes.push({ method, url: r.url });
  });
  installErrorHandlers(app);
  installRouteValidation(app);
  installSecurityHeaders(app);
  installStoreGate(app, deps.store);
  const sessions = new BrowserSessions(deps.redis, deps.keys);
  const auth = createAuthenticator(deps.config);
  const throttle = new AuthThrottle(deps.redis, deps.keys);
  installAuth(app, auth, { open: ['/healthz', '/readyz', ...DASHBOARD_OPEN_PATHS], sessions, loginPage, throttle });
  await installOpenApiDocument(app);
  await app.register(multipart, { limits: { fileSize: deps.maxUploadBytes, files: 1, fields: 10 } });
  await app.register((scope) => filesRoutes(scope, deps));
  await app.register((scope) => batchesRoutes(scope, deps));
  await app.register((scope) => benchmarkRoutes(scope, deps));
  await app.register((scope) => recordsRoutes(scope, deps));
  await app.register((scope) => schedulesRoutes(scope, deps));
  await app.register((scope) => opsRoutes(scope, deps));
  await app.register((scope) => dashboardRoutes(scope, deps, { sessions, auth, throttle }));
  return { app, routes };
}
