import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ApiToken } from '../shared/config.js';
import { DEFAULT_PROJECT } from '../shared/keys.js';
import { ALL_PROJECTS, projectScope, type Scope } from '../shared/scope.js';
import { errorBody } from './api-errors.js';

/** Who made a request: the projects it may see, and whether it may open the operator pages. */
export interface Principal {
  scope: Scope;
  admin: boolean;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal;
  }
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Pages a browser opens, where Basic auth (any user name, the token as password) is accepted besides Bearer. */
const isBrowserPage = (path: string) => path === '/admin' || path.startsWith('/admin/');

/** The token a request carries: `Authorization: Bearer T` (the scheme in any case), or Basic auth on browser pages. */
function presentedToken(req: FastifyRequest, path: string): string | undefined {
  const header = req.headers.authorization ?? '';
  const space = header.indexOf(' ');
  const scheme = header.slice(0, space).toLowerCase();
  const value = header.slice(space + 1).trim();
  if (space > 0 && scheme === 'bearer') return value;
  if (space > 0 && scheme === 'basic' && isBrowserPage(path)) {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    return decoded.slice(decoded.indexOf(':') + 1);
  }
  return undefined;
}

export interface AuthConfig {
  apiTokens: ApiToken[];
  adminTokens: string[];
}

/**
 * Bearer-token auth on every route but /healthz. A project's token sees that project only; admin tokens
 * (CHATQ_ADMIN_TOKENS) see every project and alone open /admin/queues. With no admin tokens and no named projects
 * (a single team), the API tokens are admins. Tokens are compared as SHA-256 digests with timingSafeEqual, against
 * every configured token (no early exit), so timing says nothing about which bytes matched.
 */
export function installAuth(app: FastifyInstance, config: AuthConfig, open: string[] = ['/healthz']): void {
  const singleTeam = config.adminTokens.length === 0 && config.apiTokens.every((t) => t.project === DEFAULT_PROJECT);
  const known = [
    ...config.apiTokens.map((t) => ({ digest: digest(t.token), principal: singleTeam ? { scope: ALL_PROJECTS, admin: true } : { scope: projectScope(t.project), admin: false } })),
    ...config.adminTokens.map((t) => ({ digest: digest(t), principal: { scope: ALL_PROJECTS, admin: true } })),
  ];
  app.decorateRequest('principal', null as unknown as Principal);
  app.addHook('onRequest', async (req, reply) => {
    const path = req.url.split('?')[0]!;
    if (open.includes(path)) return;
    const token = presentedToken(req, path);
    let found: Principal | undefined;
    if (token !== undefined) {
      const d = digest(token);
      for (const k of known) if (timingSafeEqual(d, k.digest) && !found) found = k.principal;
    }
    if (!found) {
      if (isBrowserPage(path)) void reply.header('www-authenticate', 'Basic realm="chatq"');
      return reply.code(401).send(errorBody(401, token === undefined ? 'Missing bearer token (Authorization: Bearer <token>).' : 'Invalid bearer token.', 'invalid_api_key'));
    }
    // The operator pages are not a project's: to its tokens they do not exist.
    if (isBrowserPage(path) && !found.admin) return reply.code(404).send(errorBody(404, `Unknown route: ${req.method} ${path}`, 'not_found'));
    req.principal = found;
  });
}

/** The project that owns what a request creates: its token's, or (an admin's) the default one. */
export const creatorProject = (p: Principal) => p.scope.project ?? DEFAULT_PROJECT;
