import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { ApiError } from '../http/api-errors.js';
import type { AuthThrottle } from '../http/auth-throttle.js';
import { sameOrigin, tokenDigest, type Authenticator } from '../http/auth.js';
import type { BrowserSessions } from '../http/browser-sessions.js';
import { typed } from '../http/zod-edge.js';
import { html, layout } from './html.js';
import { CSP } from './page-reply.js';

/** The dashboard's script and styles: served by chatq itself (no CDN), open without auth (they hold no data). */
/** Run first on the operator board's page (see ops-routes): reloads a page opened with credentials in its URL without them. */
export const BOARD_FIX_SCRIPT = '/ui/no-url-credentials.js';
const DASHBOARD_ASSETS: Record<string, { type: string; body: string }> = {
  [BOARD_FIX_SCRIPT]: {
    type: 'text/javascript; charset=utf-8',
    body: readFileSync(new URL('./assets/no-url-credentials.js', import.meta.url), 'utf8'),
  },
  '/ui/app.js': {
    type: 'text/javascript; charset=utf-8',
    body: readFileSync(new URL('./assets/app.js', import.meta.url), 'utf8'),
  },
  '/ui/app.css': {
    type: 'text/css; charset=utf-8',
    body: readFileSync(new URL('./assets/app.css', import.meta.url), 'utf8'),
  },
};

/** Paths that need no sign-in: the assets and the login form. */
export const DASHBOARD_OPEN_PATHS = [...Object.keys(DASHBOARD_ASSETS), '/login'];
/** Where to go after signing in: a path of this site only (no "//host" or "/\\host", which browsers read as another site). */
const SAFE_NEXT = /^\/(?![/\\])[\x21-\x5b\x5d-\x7e]{0,500}$/;

/** The login form, going on to `next` once signed in (also the body of a 401 to a browser, under the Basic prompt). */
export function loginPage(next: string, problem?: string): string {
  return layout(
    'Sign in',
    null,
    html`${problem ? html`<p class="error">${problem}</p>` : ''}<form method="post" action="/login" class="login">
<input type="hidden" name="next" value="${SAFE_NEXT.test(next) ? next : '/'}">
<label>API token <input type="password" name="token" autocomplete="current-password" required maxlength="1000" autofocus></label>
<button type="submit">Sign in</button>
</form>
<p class="empty">Any token of CHATQ_API_TOKENS or CHATQ_ADMIN_TOKENS: a project's token shows that project only. Browsers may also use Basic auth with the token as the password (not in the URL: Chromium refuses the page's own requests then).</p>`,
  );
}

/** How the dashboard signs browsers in: the sessions, who a token is, and the guessing throttle. */
export interface SignIn {
  sessions: BrowserSessions;
  auth: Authenticator;
  throttle: AuthThrottle;
}

/** Where the sign-in leads (a path of this site: loginPage keeps only those). */
const next = z.string().max(600).default('/');
const nextQuery = z.object({ next });
const loginForm = z.object({ token: z.string().max(1000), next });

/** The sign-in form (POSTed from this site only, guessing throttled), sign-out, and the dashboard's assets: open routes. */
export async function signInRoutes(app: FastifyInstance, { sessions, auth, throttle }: SignIn): Promise<void> {
  // The login form's body; small, and parsed only here.
  app.addContentTypeParser(
    'application/x-www-form-urlencoded',
    { parseAs: 'string', bodyLimit: 4096 },
    (_req, body, done) => done(null, Object.fromEntries(new URLSearchParams(body as string))),
  );

  const api = typed(app);
  api.get('/login', { schema: { querystring: nextQuery } }, async (req, reply) => {
    const { next } = req.query;
    return reply
      .header('content-type', 'text/html; charset=utf-8')
      .header('content-security-policy', CSP)
      .send(loginPage(next));
  });

  api.post('/login', { schema: { body: loginForm } }, async (req, reply) => {
    const form = req.body;
    if (!sameOrigin(req))
      throw new ApiError(
        403,
        'Sign in from the dashboard itself: this form was posted from another site.',
        'cross_site_request',
      );
    // Guessing is slowed down as on every route (auth-throttle.ts); the right token always signs in.
    const admission = throttle.admit(req.ip);
    if (admission === 'refused')
      throw new ApiError(
        429,
        'Too many wrong tokens from this address: wait a few seconds and try again.',
        'too_many_attempts',
      );
    const who = auth.byToken(form.token);
    await admission.done(who !== undefined, form.token);
    if (!who) {
      return reply
        .code(401)
        .header('content-type', 'text/html; charset=utf-8')
        .header('content-security-policy', CSP)
        .send(loginPage(form.next, 'That token is not one this server knows.'));
    }
    await sessions.start(reply, tokenDigest(form.token), req.protocol === 'https');
    return reply.redirect(SAFE_NEXT.test(form.next) ? form.next : '/', 303);
  });

  app.post('/logout', async (req, reply) => {
    await sessions.end(req, reply);
    return reply.redirect('/login', 303);
  });

  for (const [path, asset] of Object.entries(DASHBOARD_ASSETS)) {
    app.get(path, async (_req, reply) =>
      reply.header('content-type', asset.type).header('cache-control', 'public, max-age=300').send(asset.body),
    );
  }
}
