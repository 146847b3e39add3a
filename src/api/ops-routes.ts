import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { FastifyInstance } from 'fastify';
import { QUEUE_NAME } from '../shared/keys.js';
import type { ApiDeps } from './api-deps.js';
import { createClusterMetrics } from './cluster-metrics.js';

/** /healthz (no auth), /metrics (Prometheus), /admin/queues (bull-board). */
export async function opsRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const metrics = createClusterMetrics(deps);

  app.get('/healthz', async (_req, reply) => {
    try {
      const [pong, workers] = await Promise.all([deps.redis.ping(), deps.queue.getWorkersCount()]);
      return { status: 'ok', redis: pong === 'PONG', workers };
    } catch {
      return reply.code(503).send({ status: 'unavailable', redis: false, workers: null });
    }
  });

  app.get('/metrics', async (req, reply) => reply.header('content-type', metrics.contentType).send(await metrics.scrape(req.principal.scope)));

  const board = new FastifyAdapter();
  board.setBasePath('/admin/queues');
  createBullBoard({ queues: [new BullMQAdapter(deps.queue, { description: `${QUEUE_NAME}: one job per user lane` }), new BullMQAdapter(deps.imports)], serverAdapter: board });
  await app.register(board.registerPlugin(), { prefix: '/admin/queues', basePath: '/admin/queues' } as never);
}
