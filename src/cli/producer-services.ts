import { startImportWorker } from '../producer/import-worker.js';
import { startScheduleRunner } from '../producer/schedule-runner.js';
import type { Config } from '../shared/config.js';
import { redisKeys } from '../shared/keys.js';
import type { Logger } from '../shared/logger.js';
import { loadPrices } from '../shared/usage/pricing.js';
import { connectRedis } from '../shared/redis/redis.js';
import { RequestQueues } from '../shared/redis/request-queue.js';
import { CLOSE_STEP_MS } from '../shared/redis/worker-close.js';
import { within } from '../shared/time-bound.js';
import { startWebhookService } from '../webhooks/webhook-service.js';

/** The producer's background services: batches created over HTTP, scheduled runs, webhooks. Run by `worker` and `serve`. */
export function startProducerServices(config: Config, logger: Logger): { close(): Promise<void> } {
  const redis = connectRedis(config, 'chatq-producer');
  const keys = redisKeys(config.prefix, config.shards);
  const queues = new RequestQueues(redis, keys, { weights: config.projectWeights, slots: config.concurrency });
  const shared = {
    redis,
    redisTarget: config,
    keys,
    queues,
    resultTtlS: config.resultTtlS,
    userids: config.userids,
    prices: loadPrices(config.pricesFile),
    logger,
  };
  const importer = startImportWorker({
    ...shared,
    ...(config.defaultModel ? { defaultModel: config.defaultModel } : {}),
  });
  const scheduler = startScheduleRunner(shared);
  const webhooks = startWebhookService(config, redis, keys, logger);
  return {
    async close() {
      // Each bounded, Redis or not (worker-close.ts).
      await Promise.all([importer.close(), scheduler.close(), webhooks.close()]);
      await within(queues.close(), CLOSE_STEP_MS);
      redis.disconnect();
    },
  };
}
