import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { ImportJob } from '../shared/batch-imports.js';
import type { Config } from '../shared/config.js';
import type { RedisKeys } from '../shared/keys.js';
import type { ScheduleJob } from '../shared/schedules.js';

/** What every route group gets: Redis, the queues, the configuration. */
export interface ApiDeps {
  redis: Redis;
  keys: RedisKeys;
  queue: Queue;
  imports: Queue<ImportJob>;
  schedules: Queue<ScheduleJob>;
  config: Config;
  /** Largest accepted upload, in bytes. */
  maxUploadBytes: number;
}
