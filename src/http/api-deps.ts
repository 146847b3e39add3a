import type { Queue } from 'bullmq';
import type { RedisClient } from '../shared/redis/redis.js';
import type { ImportJob } from '../shared/batches/batch-imports.js';
import type { Config } from '../shared/config.js';
import type { RedisKeys } from '../shared/keys.js';
import type { ScheduleJob } from '../shared/files/schedules.js';
import type { RequestQueues } from '../shared/redis/request-queue.js';
import type { StoreWatch } from './store-watch.js';

/** What every route group gets: RedisClient, the queues, the configuration. */
export interface ApiDeps {
  redis: RedisClient;
  keys: RedisKeys;
  queues: RequestQueues;
  imports: Queue<ImportJob>;
  schedules: Queue<ScheduleJob>;
  config: Config;
  /** Whether Redis answers now. */
  store: StoreWatch;
  /** Largest accepted upload, in bytes. */
  maxUploadBytes: number;
}
