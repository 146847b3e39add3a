import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { FastifyInstance } from 'fastify';
import { QUEUE_NAME } from '../shared/keys.js';
import { redisReadiness } from '../shared/redis/readiness.js';
import type { ApiDeps } from '../http/api-deps.js';
import { BOARD_FIX_SCRIPT } from '../dashboard/sign-in-routes.js';
import { createClusterMetrics } from '../api/cluster-metrics.js';

/** /healthz and /readyz (no auth), /metrics (Prometheus), /admin/queues (bull-board). */
export async function opsRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const metrics = createClusterMetrics(deps);

  // The process is alive whenever it answers; whether Redis is reachable is said beside it, never as a failure.
  app.get('/healthz', async () => {
    const workers = deps.store.up ? await deps.queues.getWorkersCount().catch(() => null) : null;
    return { status: 'ok', redis: deps.store.up && workers !== null, workers };
  });

  // Whether this process can take work now: Redis reachable, this process's scripts in it. Fastify answers 503 to
  // every route while the server shuts down.
  app.get('/readyz', async (_req, reply) => {
    const r = deps.store.up ? await redisReadiness(deps.redis) : { ready: false, reason: 'redis is out of reach' };
    return r.ready ? { status: 'ready' } : reply.code(503).send({ status: 'not_ready', reason: r.reason });
  });

  app.get('/metrics', async (req, reply) =>
    reply.header('content-type', metrics.contentType).send(await metrics.scrape(req.principal.scope)),
  );

  // The board's page, made to work where bull-board alone does not: opened with the token in the URL
  // (http://user:token@host/admin/queues), Chromium refuses every fetch() the page makes (a URL with credentials
  // cannot make a Request), so its translations never load and it shows raw i18n keys (QUEUE.STATUS.ALL) or
  // "Loading"; a first script moves the page to the same URL without credentials (the browser keeps them for the
  // site). And its web font comes from Google's CDN, which offline or locked-down networks cannot reach: dropped.
  app.addHook('onSend', async (_req, reply, payload) => {
    if (typeof payload !== 'string' || !String(reply.getHeader('content-type') ?? '').startsWith('text/html'))
      return payload;
    return payload
      .replace(/<link [^>]*href="https:\/\/fonts\.googleapis\.com[^>]*>/g, '')
      .replace('<head>', `<head>\n<script src="${BOARD_FIX_SCRIPT}"></script>`);
  });
  const board = new FastifyAdapter();
  board.setBasePath('/admin/queues');
  const lanes = deps.queues.all.map(
    (q, i, all) =>
      new BullMQAdapter(q, {
        ...(all.length > 1 ? { prefix: `s${i}-` } : {}),
        description: `${QUEUE_NAME}: one job per user lane${all.length > 1 ? ` (shard ${i} of ${all.length})` : ''}`,
      }),
  );
  createBullBoard({ queues: [...lanes, new BullMQAdapter(deps.imports)], serverAdapter: board });
  await app.register(board.registerPlugin(), { prefix: '/admin/queues', basePath: '/admin/queues' } as never);
}
