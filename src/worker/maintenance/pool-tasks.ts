/** The worker pool's periodic tasks: reconciler passes over its tags, the usage fold, each one at a time. */
import type { Config } from '../../shared/config.js';
import type { RedisKeys } from '../../shared/keys.js';
import type { Logger } from '../../shared/logger.js';
import { logFailure } from '../../shared/redis/condition-log.js';
import type { RedisClient } from '../../shared/redis/redis.js';
import type { RequestQueues } from '../../shared/redis/request-queue.js';
import { foldUsage } from '../../shared/usage/usage-fold.js';
import { RequestStore } from '../store/request-store.js';
import { reconcileLanes } from './reconcile-lanes.js';

/** One reconciler pass over each of `tags` (a lane's lost job re-added, a dead import ended...); what it repaired is logged. */
export async function reconcileAll(
  ctx: {
    redis: RedisClient;
    keys: RedisKeys;
    queues: RequestQueues;
    stores: Map<RedisKeys, RequestStore>;
    owner: string;
    config: Config;
    logger: Logger;
  },
  tags: RedisKeys[],
): Promise<void> {
  const { redis, keys, queues, stores, owner, config, logger } = ctx;
  for (const k of tags) {
    try {
      const report = await reconcileLanes(
        redis,
        k,
        queues,
        stores.get(k) ?? new RequestStore([redis], k, config.resultTtlS, queues),
        owner,
        config.reconcileMs,
        { ttlS: config.resultTtlS, usageDays: config.usageDays },
      );
      if (report && (report.readded || report.lostJobs || report.endedImports || report.expired))
        logger.warn(
          { ...report, ...(keys.shardCount > 1 ? { shard: k.shardIndex } : {}) },
          'reconciler repaired lanes',
        );
    } catch (err) {
      logFailure(logger, 'warn', {}, err, 'reconciler pass failed');
    }
  }
}

/** Folds finished requests' usage into the aggregates; a failure waits for the next fold. */
export const foldTask = (redis: RedisClient, keys: RedisKeys, logger: Logger) => async () => {
  try {
    await foldUsage(redis, keys);
  } catch (err) {
    logFailure(logger, 'warn', {}, err, 'usage fold failed; the records wait for the next one');
  }
};

/** A periodic task that never runs twice at once: a tick while it runs joins the run under way. */
export function oneAtATime(task: () => Promise<void>): { run: () => Promise<void>; running: () => Promise<void> } {
  let current: Promise<void> | undefined;
  return {
    run: () => {
      current ??= task().finally(() => {
        current = undefined;
      });
      return current;
    },
    running: () => current ?? Promise.resolve(),
  };
}
