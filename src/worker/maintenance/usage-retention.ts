import type { RedisClient } from '../../shared/redis/redis.js';
import { defineScript } from '../../shared/redis/script-contract.js';
import type { RedisKeys } from '../../shared/keys.js';
import { projectsOf } from '../../shared/batches/read-store.js';
import { ALL_PROJECTS } from '../../shared/scope.js';

const rollUpScript = defineScript<
  {
    /** The day (YYYY-MM-DD) and its month (YYYY-MM). */
    day: string;
    month: string;
    now: number;
  },
  /** How many fields the day had. */
  { fields: number }
>()({
  file: new URL('./roll-up-day.lua', import.meta.url),
  // The day's usage hash and the day index, the month's usage hash and the month index.
  keys: ['day', 'day_index', 'month', 'month_index'],
  args: { day: 'string', month: 'string', now: 'whole' },
});
const DAY_MS = 86_400_000;

export interface Retention {
  /** How long results live; a user's or batch's usage outlives its last result by this much (twice for batches). */
  ttlS: number;
  /** Days of daily detail; older days are kept per month. */
  usageDays: number;
}

export interface RetentionReport {
  rolledUpDays: number;
  droppedUsers: number;
  droppedBatches: number;
}

/**
 * Keeps every usage key bounded: days past the retention roll up into their month, users and batches whose results
 * have long expired drop their aggregates, and model names are bounded at write time (finish-request.lua). Indexes of
 * before retention existed (plain sets) are migrated once.
 */
export async function applyUsageRetention(
  redis: RedisClient,
  keys: RedisKeys,
  r: Retention,
  now = Date.now(),
): Promise<RetentionReport> {
  const report: RetentionReport = { rolledUpDays: 0, droppedUsers: 0, droppedBatches: 0 };
  const lastKeptDay = new Date(now - r.usageDays * DAY_MS).toISOString().slice(0, 10);
  for (const project of await projectsOf(redis, keys, ALL_PROJECTS)) {
    for (const day of await redis.zrange(keys.usageIndex(project, 'day'), 0, -1)) {
      if (day >= lastKeptDay) continue;
      const month = day.slice(0, 7);
      await rollUpScript.run(
        redis,
        {
          day: keys.usage(project, 'day', day),
          day_index: keys.usageIndex(project, 'day'),
          month: keys.usage(project, 'month', month),
          month_index: keys.usageIndex(project, 'month'),
        },
        { day, month, now },
      );
      report.rolledUpDays += 1;
    }
    report.droppedUsers += await dropOlderThan(redis, keys, project, 'user', now - r.ttlS * 1000);
    report.droppedBatches += await dropOlderThan(redis, keys, project, 'batch', now - 2 * r.ttlS * 1000);
  }
  return report;
}

async function dropOlderThan(
  redis: RedisClient,
  keys: RedisKeys,
  project: string,
  dim: 'user' | 'batch',
  before: number,
): Promise<number> {
  const index = keys.usageIndex(project, dim);
  const stale = await redis.zrangebyscore(index, '-inf', before, 'LIMIT', 0, 1_000);
  if (stale.length)
    await redis
      .multi()
      .unlink(...stale.map((m) => keys.usage(project, dim, m)))
      .zrem(index, ...stale)
      .exec();
  return stale.length;
}
