import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { ApiDeps } from '../http/api-deps.js';
import { ApiError } from '../http/api-errors.js';
import type { AuthThrottle } from '../http/auth-throttle.js';
import { sameOrigin, tokenDigest, type Authenticator } from '../http/auth.js';
import type { BrowserSessions } from '../http/browser-sessions.js';
import { loadVisibleBatch } from '../http/visible-records.js';
import { parseInput } from '../http/zod-edge.js';
import { batchFileLines } from '../shared/batch-output.js';
import { cancelBatch } from '../shared/cancel-batch.js';
import { PROJECT_NAME } from '../shared/config.js';
import { compareBatches } from '../shared/eval-report.js';
import { isBatchId } from '../shared/ids.js';
import { DEFAULT_PROJECT } from '../shared/keys.js';
import { getRequests, getUsage } from '../shared/read-store.js';
import { listSchedules } from '../shared/schedules.js';
import { sees } from '../shared/scope.js';
import { usageReport, UsageQueryError } from '../shared/usage-report.js';
import { isUuidV4 } from '../shared/userid.js';
import {
  BATCHES_PER_PAGE,
  batchesPage,
  batchPage,
  batchRequestsPage,
  findBatches,
  REQUESTS_PER_PAGE,
  userPage,
} from './batch-pages.js';
import { progressOf } from './batch-progress.js';
import { html, layout, type PageNav } from './html.js';
import { LiveUpdates, MAX_WATCHED } from './live-updates.js';
import { comparePage, costsPage, evalsPage, scheduleRunsPage, type EvalRun } from './report-pages.js';

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

/** Nothing but chatq's own script, styles and inline SVG; no framing by other sites. */
export const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const page = z.coerce.number().int().min(0).max(10_000).default(0);
const batchParams = z.object({ id: z.string().min(1).max(200) });

/** The web dashboard, server-rendered (readable with JavaScript off), live with server-sent events, within the token's project. */
/** How the dashboard signs browsers in: the sessions, who a token is, and the guessing throttle. */
export interface SignIn {
  sessions: BrowserSessions;
  auth: Authenticator;
  throttle: AuthThrottle;
}

export async function dashboardRoutes(
  app: FastifyInstance,
  deps: ApiDeps,
  { sessions, auth, throttle }: SignIn,
): Promise<void> {
  const { redis, keys } = deps;
  // The login form's body; small, and parsed only here.
  app.addContentTypeParser(
    'application/x-www-form-urlencoded',
    { parseAs: 'string', bodyLimit: 4096 },
    (_req, body, done) => done(null, Object.fromEntries(new URLSearchParams(body as string))),
  );
  const live = new LiveUpdates(redis, keys);
  // Before the server waits for its connections to end: the event streams would never end by themselves.
  app.addHook('preClose', async () => live.close());

  const nav = (req: FastifyRequest, section: PageNav['section']): PageNav => ({ section, admin: req.principal.admin });
  const send = (reply: FastifyReply, title: string, n: PageNav | null, body: ReturnType<typeof html>) =>
    reply
      .header('content-type', 'text/html; charset=utf-8')
      .header('content-security-policy', CSP)
      .header('x-content-type-options', 'nosniff')
      .header('cache-control', 'no-store')
      .send(layout(title, n, body));
  const batchOf = (req: FastifyRequest, id: string) =>
    loadVisibleBatch(deps, req.principal.scope, id, () => new ApiError(404, `No batch ${id}.`, 'not_found', 'id'));

  // Errors on pages are pages too (with the same status and message as the API would give).
  app.setErrorHandler((err: FastifyError | ApiError, req, reply) => {
    const status =
      err instanceof ApiError ? err.statusCode : err.statusCode && err.statusCode < 500 ? err.statusCode : 500;
    if (status >= 500) req.log.error({ err: { message: err.message } }, 'dashboard page failed');
    const message = status >= 500 ? 'Internal error; the details are in the server log.' : err.message;
    // Open routes (the login form) have no principal: their error pages have no menu.
    return send(
      reply.code(status),
      status === 404 ? 'Not found' : 'Cannot show this',
      req.principal ? nav(req, 'batches') : null,
      html`<p class="error">${message}</p><p><a href="/">Back to the batches</a></p>`,
    );
  });

  app.get('/login', async (req, reply) => {
    const { next } = parseInput(z.object({ next: z.string().max(600).default('/') }), req.query);
    return reply
      .header('content-type', 'text/html; charset=utf-8')
      .header('content-security-policy', CSP)
      .send(loginPage(next));
  });

  app.post('/login', async (req, reply) => {
    const form = parseInput(
      z.object({ token: z.string().max(1000), next: z.string().max(600).default('/') }),
      req.body,
    );
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

  app.get('/', async (req, reply) => {
    const q = parseInput(
      z.object({ status: z.string().max(20).optional(), q: z.string().max(200).optional(), page }),
      req.query,
    );
    const status = q.status || undefined;
    const needle = q.q?.toLowerCase() || undefined;
    const { rows, more } = await findBatches(
      deps,
      req.principal.scope,
      (b) => (!status || b.status === status) && (!needle || b.name.toLowerCase().includes(needle)),
      q.page * BATCHES_PER_PAGE,
      BATCHES_PER_PAGE,
    );
    return send(
      reply,
      'Batches',
      nav(req, 'batches'),
      batchesPage(rows, { ...(status ? { status } : {}), ...(q.q ? { q: q.q } : {}), page: q.page }, more),
    );
  });

  app.get('/batches/:id', async (req, reply) => {
    const { id } = parseInput(batchParams, req.params);
    const { page: n } = parseInput(z.object({ page }), req.query);
    const batch = await batchOf(req, id);
    const [usage, { requests, pages }] = await Promise.all([
      getUsage(redis, keys, batch.project, 'batch', batch.id),
      batchRequestsPage(deps, id, n),
    ]);
    return send(
      reply,
      batch.name || batch.id,
      nav(req, 'batches'),
      batchPage(batch, progressOf(batch, usage), usage, requests, n, pages),
    );
  });

  app.post('/batches/:id/cancel', async (req, reply) => {
    const { id } = parseInput(batchParams, req.params);
    await batchOf(req, id);
    await cancelBatch(redis, keys, deps.queues, id, deps.config.resultTtlS, {
      code: 'cancelled',
      message: 'cancelled before it was sent',
    });
    return reply.redirect(`/batches/${id}`, 303);
  });

  for (const [file, errors] of [
    ['output', false],
    ['errors', true],
  ] as const) {
    app.get(`/batches/:id/${file}.jsonl`, async (req, reply) => {
      const { id } = parseInput(batchParams, req.params);
      await batchOf(req, id);
      return reply
        .header('content-type', 'application/jsonl')
        .header('content-disposition', `attachment; filename="${id}_${file}.jsonl"`)
        .send(Readable.from(batchFileLines(redis, keys, id, errors)));
    });
  }

  app.get('/ui/events', async (req, reply) => {
    const { batches } = parseInput(z.object({ batches: z.string().max(MAX_WATCHED * 32) }), req.query);
    const ids = [...new Set(batches.split(',').filter(isBatchId))].slice(0, MAX_WATCHED);
    const owner = req.principal.scope.project ?? '*';
    if (live.full(owner))
      throw new ApiError(
        429,
        'Too many live pages open on this server for this project; close some, or reload later.',
        'too_many_live_pages',
      );
    const projects = await Promise.all(ids.map((id) => redis.hget(keys.batch(id), 'project')));
    const visible = ids.filter((_, i) => projects[i] !== null && sees(req.principal.scope, projects[i]));
    // Nothing to watch: 204 tells EventSource not to reconnect.
    if (visible.length === 0) return reply.code(204).send();
    live.subscribe(reply, visible, owner);
  });

  app.get('/costs', async (req, reply) => {
    const range = parseInput(
      z.object({ from: z.string().max(10).optional(), to: z.string().max(10).optional() }),
      req.query,
    );
    const q = { ...(range.from ? { from: range.from } : {}), ...(range.to ? { to: range.to } : {}) };
    try {
      const [byDay, byModel] = await Promise.all([
        usageReport(redis, keys, req.principal.scope, { by: 'day', ...q }),
        usageReport(redis, keys, req.principal.scope, { by: 'model' }),
      ]);
      return send(reply, 'Costs', nav(req, 'costs'), costsPage(byDay, byModel, q));
    } catch (err) {
      if (err instanceof UsageQueryError) throw new ApiError(400, err.message, 'invalid_request');
      throw err;
    }
  });

  app.get('/evals', async (req, reply) =>
    send(
      reply,
      'Evaluations',
      nav(req, 'evals'),
      evalsPage(await listSchedules(redis, keys, deps.schedules, req.principal.scope)),
    ),
  );

  app.get('/evals/:name', async (req, reply) => {
    const { name } = parseInput(z.object({ name: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/) }), req.params);
    const { rows } = await findBatches(deps, req.principal.scope, (b) => b.metadata.schedule === name, 0, 200);
    const runs: EvalRun[] = rows
      .map(({ batch, progress }) => ({
        id: batch.id,
        name: batch.name,
        firedAt: batch.metadata.fired_at ?? new Date(batch.createdAt).toISOString(),
        progress,
      }))
      .reverse();
    return send(reply, `Evaluation ${name}`, nav(req, 'evals'), scheduleRunsPage(name, runs));
  });

  app.get('/compare', async (req, reply) => {
    const { a, b } = parseInput(z.object({ a: z.string().max(200), b: z.string().max(200) }), req.query);
    await Promise.all([batchOf(req, a), batchOf(req, b)]);
    return send(reply, 'Compare runs', nav(req, 'evals'), comparePage(a, b, await compareBatches(redis, keys, a, b)));
  });

  app.get('/users/:userid', async (req, reply) => {
    const { userid } = parseInput(
      z.object({ userid: z.string().max(64).refine(isUuidV4, { message: 'expected a UUID v4' }) }),
      req.params,
    );
    const q = parseInput(z.object({ project: z.string().regex(PROJECT_NAME).optional(), page }), req.query);
    const { scope } = req.principal;
    const project = scope.project ?? q.project ?? DEFAULT_PROJECT;
    const index = keys.forUser(userid.toLowerCase()).userRequests(project, userid.toLowerCase());
    const ids = await redis.lrange(index, q.page * REQUESTS_PER_PAGE, (q.page + 1) * REQUESTS_PER_PAGE);
    const requests = (await getRequests(redis, keys, ids.slice(0, REQUESTS_PER_PAGE))).filter((r) => r !== null);
    return send(
      reply,
      'User timeline',
      nav(req, 'batches'),
      userPage(userid.toLowerCase(), requests, q.page, ids.length > REQUESTS_PER_PAGE, project),
    );
  });
}
