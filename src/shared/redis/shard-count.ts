import { redisKeys, type RedisKeys } from '../keys.js';
import type { RedisClient } from './redis.js';

export class ShardCountError extends Error {}

/**
 * Records the CHATQ_SHARDS a Redis is used with, and refuses another while work written under the one before is
 * unfinished (lanes with requests, imports running): those requests live under the old shards' tags, where workers
 * of the new count would never look. Once it is done (or cancelled), the count may change; finished batches stay
 * readable either way (a request id names its shard).
 */
export async function checkShardCount(redis: RedisClient, keys: RedisKeys): Promise<void> {
  const stored = Number(await redis.get(keys.shardsInUse)) || 1;
  if (stored === keys.shardCount) {
    if (keys.shardCount > 1) await redis.set(keys.shardsInUse, keys.shardCount);
    return;
  }
  const before = redisKeys(keys.prefix, stored);
  const tags = stored > 1 ? [before, ...before.shards] : [before];
  const open = await Promise.all(tags.flatMap((k) => [redis.scard(k.lanes), redis.scard(k.importing)]));
  if (open.some((n) => n > 0)) {
    throw new ShardCountError(
      `this Redis holds unfinished work written with CHATQ_SHARDS=${stored} (now ${keys.shardCount}): run workers with CHATQ_SHARDS=${stored} until it is done (or cancel it), then change the shard count`,
    );
  }
  await redis.set(keys.shardsInUse, keys.shardCount);
}
