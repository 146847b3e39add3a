import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ApiToken } from '../shared/config-env.js';
import { DEFAULT_PROJECT } from '../shared/keys.js';
import { ALL_PROJECTS, projectScope, type Scope } from '../shared/scope.js';
import { errorBody } from './api-errors.js';
import type { AuthThrottle } from './auth-throttle.js';
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

/**
 * What a route is, from the pattern the router matched (never the raw URL: the router decodes "%61dmin" to "admin"):
 * the operator board (admins only), the API and the scrape endpoint (Bearer only), or a page a browser opens (Bearer,
 * Basic auth with the token as password, or the login form's cookie). A path no route matches is treated as the API.
 */
export type RouteKind = 'operator' | 'api' | 'browser';
export function routeKind(route: string | undefined): RouteKind {
  if (route === undefined || route === '/v1' || route.startsWith('/v1/') || route === '/metrics') return 'api';
  return route === '/admin' || route.startsWith('/admin/') ? 'operator' : 'browser';
}

/** The token a request carries: `Authorization: Bearer T` (the scheme in any case), or Basic auth on browser pages. */
function presentedToken(req: FastifyRequest, kind: RouteKind): { token: string; ambient: boolean } | undefined {
  const header = req.headers.authorization ?? '';
  const space = header.indexOf(' ');
  const scheme = header.slice(0, space).toLowerCase();
  const value = header.slice(space + 1).trim();
  if (space > 0 && scheme === 'bearer') return { token: value, ambient: false };
  if (space > 0 && scheme === 'basic' && kind !== 'api') {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    return { token: decoded.slice(decoded.indexOf(':') + 1), ambient: true };
  }
  return undefined;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Whether a request comes from a page of this site. Browsers send Origin (and Sec-Fetch-Site) on every cross-site
 * POST; clients that send neither are not browsers, and have no cookies or cached Basic credentials to abuse.
 */
export function sameOrigin(req: FastifyRequest): boolean {
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin') return false;
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}

export interface AuthConfig {
  apiTokens: ApiToken[];
  adminTokens: string[];
}

/** Who a token is: looked up by the token itself, or (for a signed-in browser) by its digest. */
export interface Authenticator {
  byToken(token: string): Principal | undefined;
  /** The principal of the configured token whose SHA-256 (hex) this is; none when that token is no longer configured. */
  byDigest(digestHex: string): Principal | undefined;
}

export const tokenDigest = (token: string) => digest(token).toString('hex');

/** Turns a presented token into who it is, comparing digests in constant time against every configured token. */
export function createAuthenticator(config: AuthConfig): Authenticator {
  const singleTeam = config.adminTokens.length === 0 && config.apiTokens.every((t) => t.project === DEFAULT_PROJECT);
  const known = [
    ...config.apiTokens.map((t) => ({
      digest: digest(t.token),
      principal: singleTeam ? { scope: ALL_PROJECTS, admin: true } : { scope: projectScope(t.project), admin: false },
    })),
    ...config.adminTokens.map((t) => ({ digest: digest(t), principal: { scope: ALL_PROJECTS, admin: true } })),
  ];
  const find = (d: Buffer) => {
    let found: Principal | undefined;
    for (const k of known) if (timingSafeEqual(d, k.digest) && !found) found = k.principal;
    return found;
  };
  return {
    byToken: (token) => find(digest(token)),
    byDigest: (hex) => (/^[0-9a-f]{64}$/.test(hex) ? find(Buffer.from(hex, 'hex')) : undefined),
  };
}

export interface AuthOptions {
  /** Routes that need no token (health, the dashboard's script and styles, its login form). */
  open: string[];
  /** Signed-in browsers (the dashboard's login form): a session cookie stands for its token on browser pages. */
  sessions: BrowserSessions;
  /** What a browser that asks for HTML gets with the 401 (the login form; the Basic prompt comes first). */
  loginPage: (next: string) => string;
  /** Slows down guessing: wrong tokens past a few per address are answered late, or refused unchecked. */
  throttle: AuthThrottle;
}

const tooManyFailures = () =>
  errorBody(429, 'Too many wrong tokens from this address: wait a few seconds and try again.', 'too_many_attempts');

/**
 * Bearer-token auth on every route but `open` ones. A project's token sees that project only; admin tokens
 * (CHATQ_ADMIN_TOKENS) see every project and alone open /admin/queues. With no admin tokens and no named projects
 * (a single team), the API tokens are admins. Tokens are compared as SHA-256 digests with timingSafeEqual, against
 * every configured token (no early exit), so timing says nothing about which bytes matched. Browser pages also take
 * Basic auth (the token as password) or the session cookie of the login form; a write (any method but GET, HEAD,
 * OPTIONS) with those ambient credentials must come from this site. Every decision is made on the route the router
 * matched; a request target that is not a path (absolute form, "*") is refused before any.
 */
export function installAuth(app: FastifyInstance, auth: Authenticator, opts: AuthOptions): void {
  app.decorateRequest('principal', null as unknown as Principal);
  app.addHook('onRequest', async (req, reply) => {
    if (!req.url.startsWith('/'))
      return reply
        .code(400)
        .send(
          errorBody(
            400,
            'The request target must be a path (such as /v1/batches), not an absolute URL.',
            'invalid_url',
          ),
        );
    const route = req.routeOptions.url;
    if (route !== undefined && opts.open.includes(route)) return;
    const kind = routeKind(route);
    const presented = presentedToken(req, kind);
    let found: Principal | undefined;
    if (presented !== undefined) {
      const admission = opts.throttle.admit(req.ip);
      if (admission === 'refused') return reply.code(429).header('retry-after', '2').send(tooManyFailures());
      found = auth.byToken(presented.token);
      await admission.done(found !== undefined, presented.token);
    }
    let ambient = presented?.ambient ?? false;
    if (presented === undefined && kind !== 'api') {
      const session = await opts.sessions.lookup(sessionCookie(req));
      found = session === undefined ? undefined : auth.byDigest(session);
      ambient = true;
    }
    if (!found) {
      if (kind === 'api')
        return reply
          .code(401)
          .send(
            errorBody(
              401,
              presented === undefined
                ? 'Missing bearer token (Authorization: Bearer <token>).'
                : 'Invalid bearer token.',
              'invalid_api_key',
            ),
          );
      void reply.header('www-authenticate', 'Basic realm="chatq"');
      if (req.headers.accept?.includes('text/html'))
        return reply.code(401).header('content-type', 'text/html; charset=utf-8').send(opts.loginPage(req.url));
      return reply
        .code(401)
        .send(
          errorBody(
            401,
            'Sign in: Basic auth with an API token as the password, or the login form at /login.',
            'invalid_api_key',
          ),
        );
    }
    // The operator pages are not a project's: to its tokens they do not exist.
    if (kind === 'operator' && !found.admin)
      return reply.code(404).send(errorBody(404, `Unknown route: ${req.method} ${req.url.split('?')[0]}`, 'not_found'));
    if (ambient && !SAFE_METHODS.has(req.method) && !sameOrigin(req)) {
      return reply
        .code(403)
        .send(
          errorBody(
            403,
            'Refused: this change was posted from another site. Use the dashboard itself, or an API token (Bearer).',
            'cross_site_request',
          ),
        );
    }
    req.principal = found;
  });
}

/** The project that owns what a request creates: its token's, or (an admin's) the default one. */
export const creatorProject = (p: Principal) => p.scope.project ?? DEFAULT_PROJECT;
