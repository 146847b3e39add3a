import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ApiToken } from '../shared/config.js';
import { DEFAULT_PROJECT } from '../shared/keys.js';
import { ALL_PROJECTS, projectScope, type Scope } from '../shared/scope.js';
import { errorBody } from './api-errors.js';
import { sessionCookie, type BrowserSessions } from './browser-sessions.js';

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

/** The operator pages (bull-board): admins only. */
const isOperatorPage = (path: string) => path === '/admin' || path.startsWith('/admin/');
/**
 * Pages a browser opens (the dashboard and the operator pages), where Basic auth (any user name, the token as
 * password) is accepted besides Bearer: everything but the API (/v1/) and the scrape endpoint.
 */
const isBrowserPage = (path: string) => !path.startsWith('/v1/') && path !== '/v1' && path !== '/metrics';

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

/** Turns a presented token into who it is, comparing digests in constant time against every configured token. */
export function createAuthenticator(config: AuthConfig): (token: string) => Principal | undefined {
  const singleTeam = config.adminTokens.length === 0 && config.apiTokens.every((t) => t.project === DEFAULT_PROJECT);
  const known = [
    ...config.apiTokens.map((t) => ({ digest: digest(t.token), principal: singleTeam ? { scope: ALL_PROJECTS, admin: true } : { scope: projectScope(t.project), admin: false } })),
    ...config.adminTokens.map((t) => ({ digest: digest(t), principal: { scope: ALL_PROJECTS, admin: true } })),
  ];
  return (token) => {
    const d = digest(token);
    let found: Principal | undefined;
    for (const k of known) if (timingSafeEqual(d, k.digest) && !found) found = k.principal;
    return found;
  };
}

export interface AuthOptions {
  /** Routes that need no token (health, the dashboard's script and styles, its login form). */
  open: string[];
  /** Signed-in browsers (the dashboard's login form): a session cookie stands for the token on browser pages. */
  sessions: BrowserSessions;
  /** What a browser that asks for HTML gets with the 401 (the login form; the Basic prompt comes first). */
  loginPage: (next: string) => string;
}

/**
 * Bearer-token auth on every route but `open` ones. A project's token sees that project only; admin tokens
 * (CHATQ_ADMIN_TOKENS) see every project and alone open /admin/queues. With no admin tokens and no named projects
 * (a single team), the API tokens are admins. Tokens are compared as SHA-256 digests with timingSafeEqual, against
 * every configured token (no early exit), so timing says nothing about which bytes matched. Browser pages also take
 * Basic auth (the token as password) or the session cookie of the login form.
 */
export function installAuth(app: FastifyInstance, principalOf: (token: string) => Principal | undefined, opts: AuthOptions): void {
  app.decorateRequest('principal', null as unknown as Principal);
  app.addHook('onRequest', async (req, reply) => {
    const path = req.url.split('?')[0]!;
    if (opts.open.includes(path)) return;
    const token = presentedToken(req, path);
    let found = token === undefined ? undefined : principalOf(token);
    if (token === undefined && isBrowserPage(path)) found = await opts.sessions.lookup(sessionCookie(req));
    if (!found) {
      if (!isBrowserPage(path)) return reply.code(401).send(errorBody(401, token === undefined ? 'Missing bearer token (Authorization: Bearer <token>).' : 'Invalid bearer token.', 'invalid_api_key'));
      void reply.header('www-authenticate', 'Basic realm="chatq"');
      if (req.headers.accept?.includes('text/html')) return reply.code(401).header('content-type', 'text/html; charset=utf-8').send(opts.loginPage(req.url));
      return reply.code(401).send(errorBody(401, 'Sign in: Basic auth with an API token as the password, or the login form at /login.', 'invalid_api_key'));
    }
    // The operator pages are not a project's: to its tokens they do not exist.
    if (isOperatorPage(path) && !found.admin) return reply.code(404).send(errorBody(404, `Unknown route: ${req.method} ${path}`, 'not_found'));
    req.principal = found;
  });
}

/** The project that owns what a request creates: its token's, or (an admin's) the default one. */
export const creatorProject = (p: Principal) => p.scope.project ?? DEFAULT_PROJECT;
