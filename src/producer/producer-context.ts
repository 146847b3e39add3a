import type { Logger } from '../shared/logger.js';
import type { RedisKeys } from '../shared/keys.js';
import type { PriceTable } from '../shared/usage/pricing.js';
import type { RedisClient } from '../shared/redis/redis.js';
import type { RedisTarget } from '../shared/redis/redis-target.js';
import type { RequestQueues } from '../shared/redis/request-queue.js';

/** What an import runs with: Redis, the queues, the key layout, how long results live, the price map. */
export interface ProducerContext {
  redis: RedisClient;
  queues: RequestQueues;
  keys: RedisKeys;
  resultTtlS: number;
  /** The price map: its models' output limits bound max_tokens when lines are parsed. */
  prices: PriceTable;
}

/** What the producer's background services (imports, schedules) run with. */
export interface ProducerServiceOptions extends ProducerContext {
  redisTarget: RedisTarget;
  logger: Logger;
}
