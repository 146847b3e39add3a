import { Readable } from 'node:stream';
import type { FastifyError, FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { ApiDeps } from '../http/api-deps.js';
import { ApiError, asApiError } from '../http/api-errors.js';
import { idParams, typed, useridParams } from '../http/zod-edge.js';
import { estimateStoredFile } from '../http/file-estimate.js';
import { loadVisibleFile } from '../http/visible-records.js';
import { loadPrices } from '../shared/usage/pricing.js';
import { batchFileLines } from '../shared/batches/batch-output.js';
import { cancelBatch } from '../shared/batches/cancel-batch.js';
import { PROJECT_NAME } from '../shared/config-env.js';
import { compareBatches, evaluateBatch } from '../shared/reports/eval-report.js';
import { isBatchId } from '../shared/ids.js';
import { DEFAULT_PROJECT } from '../shared/keys.js';
import { getRequests, getUsage, readBatchRequests } from '../shared/batches/read-store.js';
import { benchmarkAnswers, benchmarkRun } from '../shared/reports/benchmark-report.js';
import { listSchedules } from '../shared/files/schedules.js';
import { sees } from '../shared/scope.js';
import { usageReport, UsageQueryError } from '../shared/reports/usage-report.js';
import {
  BATCHES_PER_PAGE,
  batchesPage,
  batchPage,
  batchRequestsPage,
  findBatches,
  REQUESTS_PER_PAGE,
  userPage,
} from './batch-pages.js';
import { benchmarkComparison, benchmarkSection, QUESTIONS_PER_PAGE } from './benchmark-pages.js';
import { progressOf } from './batch-progress.js';
import { fileForm, filePage } from './file-pages.js';
import { html } from './html.js';
import { LiveUpdates, MAX_WATCHED } from './live-updates.js';
import { navOf, sendPage, visibleBatch } from './page-reply.js';
import { comparePage, costsPage, evalsPage, scheduleRunsPage, type EvalRun } from './report-pages.js';
import { type SignIn, signInRoutes } from './sign-in-routes.js';
import { type BrowserSessions, sessionCookie } from '../http/browser-sessions.js';

const page = z.coerce.number().int().min(0).max(10_000).default(0);
const listQuery = z.object({ status: z.string().max(20).optional(), q: z.string().max(200).optional(), page });
const userQuery = z.object({ project: z.string().regex(PROJECT_NAME).optional(), page });
const fileId = z.string().trim().min(1).max(100);
const fileIdInput = z.object({ id: fileId });
const batchQuery = z.object({ page, qpage: page });
const eventsQuery = z.object({ batches: z.string().max(MAX_WATCHED * 32) });
const rangeQuery = z.object({ from: z.string().max(10).optional(), to: z.string().max(10).optional() });
const evalParams = z.object({ name: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/) });
const compareQuery = z.object({ a: z.string().max(200), b: z.string().max(200) });

/** The web dashboard, server-rendered (readable with JavaScript off), live with server-sent events, within the token's project. */
export async function dashboardRoutes(app: FastifyInstance, deps: ApiDeps, signIn: SignIn): Promise<void> {
  const { redis, keys } = deps;
  const live = new LiveUpdates(redis, keys);
  // Before the server waits for its connections to end: the event streams would never end by themselves.
  app.addHook('preClose', async () => live.close());

  // Errors on pages are pages too (with the same status and message as the API would give).
  app.setErrorHandler((thrown: FastifyError | ApiError, req, reply) => {
    const err = asApiError(thrown);
    const status =
      err instanceof ApiError ? err.statusCode : err.statusCode && err.statusCode < 500 ? err.statusCode : 500;
    if (status >= 500) req.log.error({ err: { message: err.message } }, 'dashboard page failed');
    const message = status >= 500 ? 'Internal error; the details are in the server log.' : err.message;
    // Open routes (the login form) have no principal: their error pages have no menu.
    return sendPage(
      reply.code(status),
      status === 404 ? 'Not found' : 'Cannot show this',
      req.principal ? navOf(req, 'batches') : null,
      html`<p class="error">${message}</p><p><a href="/">Back to the batches</a></p>`,
    );
  });

  await signInRoutes(app, signIn);
  listRoutes(app, deps);
  fileRoutes(app, deps);
  batchRoutes(app, deps, live, signIn.sessions);
  reportRoutes(app, deps);
}

/** The batches (filtered, paged) and a user's timeline. */
function listRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const { redis, keys } = deps;
  const api = typed(app);
  api.get('/', { schema: { querystring: listQuery } }, async (req, reply) => {
    const q = req.query;
    const status = q.status || undefined;
    const needle = q.q?.toLowerCase() || undefined;
    const { rows, more } = await findBatches(
      deps,
      req.principal.scope,
      (b) => (!status || b.status === status) && (!needle || b.name.toLowerCase().includes(needle)),
      q.page * BATCHES_PER_PAGE,
      BATCHES_PER_PAGE,
    );
    return sendPage(
      reply,
      'Batches',
      navOf(req, 'batches'),
      html`${batchesPage(rows, { ...(status ? { status } : {}), ...(q.q ? { q: q.q } : {}), page: q.page }, more)}
${fileForm()}`,
    );
  });

  api.get('/users/:userid', { schema: { params: useridParams, querystring: userQuery } }, async (req, reply) => {
    const { userid } = req.params;
    const q = req.query;
    const { scope } = req.principal;
    const project = scope.project ?? q.project ?? DEFAULT_PROJECT;
    const index = keys.forUser(userid.toLowerCase()).userRequests(project, userid.toLowerCase());
    const ids = await redis.lrange(index, q.page * REQUESTS_PER_PAGE, (q.page + 1) * REQUESTS_PER_PAGE);
    const requests = (await getRequests(redis, keys, ids.slice(0, REQUESTS_PER_PAGE))).filter((r) => r !== null);
    return sendPage(
      reply,
      'User timeline',
      navOf(req, 'batches'),
      userPage(userid.toLowerCase(), requests, q.page, ids.length > REQUESTS_PER_PAGE, project),
    );
  });
}

/** An uploaded file's page: its estimate before a batch is made of it (the form on the batches page leads there). */
function fileRoutes(app: FastifyInstance, deps: ApiDeps): void {
  // The price map, read once (as the API's dry run does).
  const prices = loadPrices(deps.config.pricesFile);
  const api = typed(app);
  api.get('/files', { schema: { querystring: fileIdInput } }, async (req, reply) => {
    const { id } = req.query;
    return reply.redirect(`/files/${encodeURIComponent(id)}`, 303);
  });
  api.get('/files/:id', { schema: { params: fileIdInput } }, async (req, reply) => {
    const { id } = req.params;
    const file = await loadVisibleFile(
      deps,
      req.principal.scope,
      id,
      () => new ApiError(404, `No file ${id}.`, 'not_found', 'id'),
    );
    const estimate = await estimateStoredFile(deps, prices, req.principal.scope, file);
    return sendPage(reply, `File ${file.filename}`, navOf(req, 'batches'), filePage(file, estimate));
  });
}

/** One batch: its page (with its requests), cancel, output files and live progress. */
const tooManyLivePages = () =>
  new ApiError(
    429,
    'Too many live pages open on this server for this project; close some, or reload later.',
    'too_many_live_pages',
  );

function batchRoutes(app: FastifyInstance, deps: ApiDeps, live: LiveUpdates, sessions: BrowserSessions): void {
  const { redis, keys } = deps;
  const api = typed(app);
  api.get('/batches/:id', { schema: { params: idParams, querystring: batchQuery } }, async (req, reply) => {
    const { id } = req.params;
    const { page: n, qpage } = req.query;
    const batch = await visibleBatch(deps, req, id);
    const [usage, { requests, pages }, run] = await Promise.all([
      getUsage(redis, keys, batch.project, 'batch', batch.id),
      batchRequestsPage(deps, id, n),
      benchmarkRun(redis, keys, batch, deps.config.resultTtlS),
    ]);
    const questions = run
      ? await getRequests(
          redis,
          keys,
          run.questions.slice(qpage * QUESTIONS_PER_PAGE, (qpage + 1) * QUESTIONS_PER_PAGE),
        )
      : [];
    const benchmark =
      run &&
      benchmarkSection(
        id,
        run,
        questions.filter((r) => r !== null),
        qpage,
      );
    return sendPage(
      reply,
      batch.name || batch.id,
      navOf(req, 'batches'),
      batchPage(batch, progressOf(batch, usage), usage, requests, n, pages, benchmark),
    );
  });

  api.get('/batches/:id/benchmark-answers', { schema: { params: idParams } }, async (req, reply) => {
    const { id } = req.params;
    const batch = await visibleBatch(deps, req, id);
    const run = await benchmarkRun(redis, keys, batch, deps.config.resultTtlS);
    if (!run) throw new ApiError(404, `Batch ${id} is no memory benchmark run.`, 'not_found', 'id');
    const jsonl = run.report.benchmark === 'longmemeval';
    return reply
      .header('content-type', jsonl ? 'application/jsonl' : 'application/json')
      .header('content-disposition', `attachment; filename="${id}_${run.report.benchmark}.${jsonl ? 'jsonl' : 'json'}"`)
      .send(Readable.from(benchmarkAnswers(readBatchRequests(redis, keys, id))));
  });

  api.post('/batches/:id/cancel', { schema: { params: idParams } }, async (req, reply) => {
    const { id } = req.params;
    await visibleBatch(deps, req, id);
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
    api.get(`/batches/:id/${file}.jsonl`, { schema: { params: idParams } }, async (req, reply) => {
      const { id } = req.params;
      await visibleBatch(deps, req, id);
      return reply
        .header('content-type', 'application/jsonl')
        .header('content-disposition', `attachment; filename="${id}_${file}.jsonl"`)
        .send(Readable.from(batchFileLines(redis, keys, id, errors)));
    });
  }

  api.get('/ui/events', { schema: { querystring: eventsQuery } }, async (req, reply) => {
    const { batches } = req.query;
    const ids = [...new Set(batches.split(',').filter(isBatchId))].slice(0, MAX_WATCHED);
    const owner = req.principal.scope.project ?? '*';
    if (live.full(owner)) throw tooManyLivePages();
    // A page signed in with the login form's session streams only as long as that session stands.
    const sid = req.headers.authorization === undefined ? sessionCookie(req) : undefined;
    const session = await sessions.lookup(sid);
    const projects = await Promise.all(ids.map((id) => redis.hget(keys.batch(id), 'project')));
    const visible = ids.filter((_, i) => projects[i] !== null && sees(req.principal.scope, projects[i]));
    // Nothing to watch: 204 tells EventSource not to reconnect.
    if (visible.length === 0) return reply.code(204).send();
    // Again, with no await before subscribing: the pages of a burst all passed the first check before any subscribed.
    if (live.full(owner)) throw tooManyLivePages();
    live.subscribe(reply, visible, owner, session ? async () => (await sessions.lookup(sid)) === session : undefined);
  });
}

/** The runs of a schedule whose pass rates by tag its page shows. */
const TAG_TREND_RUNS = 10;

/** Costs, evaluations (schedules and their runs) and the comparison of two runs. */
function reportRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const { redis, keys } = deps;
  const api = typed(app);
  api.get('/costs', { schema: { querystring: rangeQuery } }, async (req, reply) => {
    const range = req.query;
    const q = { ...(range.from ? { from: range.from } : {}), ...(range.to ? { to: range.to } : {}) };
    try {
      const [byDay, byModel] = await Promise.all([
        usageReport(redis, keys, req.principal.scope, { by: 'day', ...q }),
        usageReport(redis, keys, req.principal.scope, { by: 'model' }),
      ]);
      return sendPage(reply, 'Costs', navOf(req, 'costs'), costsPage(byDay, byModel, q));
    } catch (err) {
      if (err instanceof UsageQueryError) throw new ApiError(400, err.message, 'invalid_request');
      throw err;
    }
  });

  app.get('/evals', async (req, reply) =>
    sendPage(
      reply,
      'Evaluations',
      navOf(req, 'evals'),
      evalsPage(await listSchedules(redis, keys, deps.schedules, req.principal.scope)),
    ),
  );

  api.get('/evals/:name', { schema: { params: evalParams } }, async (req, reply) => {
    const { name } = req.params;
    const { rows } = await findBatches(deps, req.principal.scope, (b) => b.metadata.schedule === name, 0, 200);
    const runs: EvalRun[] = rows
      .map(({ batch, progress }) => ({
        id: batch.id,
        name: batch.name,
        firedAt: batch.metadata.fired_at ?? new Date(batch.createdAt).toISOString(),
        progress,
      }))
      .reverse();
    // Pass rates by tag over the latest runs (each read whole: a few runs, not all 200).
    const latest = rows.slice(0, TAG_TREND_RUNS).reverse();
    const byTag = await Promise.all(latest.map(({ batch }) => evaluateBatch(redis, keys, batch).then((e) => e.byTag)));
    return sendPage(
      reply,
      `Evaluation ${name}`,
      navOf(req, 'evals'),
      scheduleRunsPage(name, runs, { runs: runs.slice(-latest.length), byTag }),
    );
  });

  api.get('/compare', { schema: { querystring: compareQuery } }, async (req, reply) => {
    const { a, b } = req.query;
    const [ba, bb] = await Promise.all([visibleBatch(deps, req, a), visibleBatch(deps, req, b)]);
    const [ra, rb] = await Promise.all(
      [ba, bb].map((batch) => benchmarkRun(redis, keys, batch, deps.config.resultTtlS)),
    );
    const side = ra && rb && ra.report.benchmark === rb.report.benchmark ? benchmarkComparison(ra, rb) : undefined;
    return sendPage(
      reply,
      'Compare runs',
      navOf(req, 'evals'),
      html`${side ?? ''}${comparePage(a, b, await compareBatches(redis, keys, a, b))}`,
    );
  });
}
