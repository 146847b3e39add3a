import type { FastifyInstance } from 'fastify';
import { html, layout } from '../dashboard/html.js';
import { errorBody, STORE_RETRY_AFTER_S } from '../http/api-errors.js';
import { routeKind } from '../http/auth.js';
import type { StoreWatch } from '../http/store-watch.js';

const unreachablePage = () =>
  layout(
    'Redis cannot be reached',
    null,
    html`<p class="error">chatq cannot reach Redis right now, so nothing can be shown or changed. Batches already accepted are kept; workers go on once Redis answers again.</p>
<p><a href="">Reload</a> in a few seconds.</p>`,
  );

/**
 * While Redis is out of reach every route but /healthz and /readyz answers at once: 503 with retry-after, in OpenAI's error shape
 * for API clients and as a page for browsers, instead of waiting on commands that Redis may never answer.
 */
export function installStoreGate(app: FastifyInstance, watch: StoreWatch): void {
  app.addHook('onRequest', async (req, reply) => {
    if (watch.up || req.routeOptions.url === '/healthz' || req.routeOptions.url === '/readyz') return;
    void reply.code(503).header('retry-after', String(STORE_RETRY_AFTER_S));
    if (routeKind(req.routeOptions.url) !== 'api' && req.headers.accept?.includes('text/html'))
      return reply.header('content-type', 'text/html; charset=utf-8').send(unreachablePage());
    return reply.send(
      errorBody(503, 'The server cannot reach its store right now; try again shortly.', 'store_unavailable'),
    );
  });
}
