import type { Logger } from '../shared/logger.js';
import type { RedisKeys } from '../shared/keys.js';
import type { PriceTable } from '../shared/usage/pricing.js';
import type { RedisClient } from '../shared/redis/redis.js';
import type { RedisTarget } from '../shared/redis/redis-target.js';
import type { RequestQueues } from '../shared/redis/request-queue.js';
import type { UseridSettings } from '../shared/userid.js';
import type { FairTurns } from './fair-turns.js';

/** What an import runs with: Redis, the queues, the key layout, how long results live, the price map. */
export interface ProducerContext {
  redis: RedisClient;
  queues: RequestQueues;
  keys: RedisKeys;
  resultTtlS: number;
  /** How userids are derived and held (the configuration's). */
  userids: UseridSettings;
  /** The price map: its models' output limits bound max_tokens when lines are parsed. */
  prices: PriceTable;
  /**
   * Turns shared by the imports of a process, project by project: at reading and parsing their input (one import at a
   * time: it is CPU work), and at writing their chunks (none: an import alone, as `chatq enqueue`).
   */
  importTurns?: { parse: FairTurns; write: FairTurns };
}

/** What the producer's background services (imports, schedules) run with. */
export interface ProducerServiceOptions extends ProducerContext {
  redisTarget: RedisTarget;
  logger: Logger;
}
