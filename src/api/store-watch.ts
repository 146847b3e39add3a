import type { FastifyInstance } from 'fastify';
import { html, layout } from '../dashboard/html.js';
import type { RedisClient } from '../shared/redis.js';
import { errorBody, STORE_RETRY_AFTER_S } from './api-errors.js';
import { routeKind } from './auth.js';

/** How often Redis is pinged, and how long a ping may take before Redis counts as out of reach. */
const PING_EVERY_MS = 500;
const PING_WITHIN_MS = 750;

/**
 * Whether this process can reach Redis now, from one ping at a time: a ping unanswered after 750 ms (a partition
 * holds commands without failing them) or failed (a refused connection) marks Redis out of reach until one answers.
 */
export class StoreWatch {
  private reachable = true;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly redis: RedisClient) {}

  get up(): boolean {
    return this.reachable;
  }

  start(): this {
    void this.loop();
    return this;
  }

  private async loop(): Promise<void> {
    while (!this.closed) {
      const slow = setTimeout(() => (this.reachable = false), PING_WITHIN_MS);
      this.reachable = await this.redis.ping().then((pong) => pong === 'PONG', () => false);
      clearTimeout(slow);
      await new Promise<void>((resolve) => (this.timer = setTimeout(resolve, PING_EVERY_MS)));
    }
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }
}

const unreachablePage = () =>
  layout('Redis cannot be reached', null, html`<p class="error">chatq cannot reach Redis right now, so nothing can be shown or changed. Batches already accepted are kept; workers go on once Redis answers again.</p>
<p><a href="">Reload</a> in a few seconds.</p>`);

/**
 * While Redis is out of reach every route but /healthz answers at once: 503 with retry-after, in OpenAI's error shape
 * for API clients and as a page for browsers, instead of waiting on commands that Redis may never answer.
 */
export function installStoreGate(app: FastifyInstance, watch: StoreWatch): void {
  app.addHook('onRequest', async (req, reply) => {
    if (watch.up || req.routeOptions.url === '/healthz') return;
    void reply.code(503).header('retry-after', String(STORE_RETRY_AFTER_S));
    if (routeKind(req.routeOptions.url) !== 'api' && req.headers.accept?.includes('text/html')) return reply.header('content-type', 'text/html; charset=utf-8').send(unreachablePage());
    return reply.send(errorBody(503, 'The server cannot reach its store right now; try again shortly.', 'store_unavailable'));
  });
}
