import { batchPartId, type RedisKeys } from '../shared/keys.js';
import type { RedisClient } from '../shared/redis/redis.js';
import { ImportGuard, ImportRefused } from './import-guard.js';

/** Where an import writes requests: the batch itself, or (sharded) each of its parts, each under its own lease. */
export interface ImportTarget {
  keys: RedisKeys;
  id: string;
  guard: ImportGuard;
  /** The project's user index keys around the userid, from keys.ts (the enqueue script builds them per user). */
  userIndex: [string, string];
}

const userIndexOf = (keys: RedisKeys, project: string) =>
  keys.userRequests(project, '\u0002').split('\u0002') as [string, string];

/**
 * The targets of a batch's import. A sharded batch gets its parts made here (a batch created over HTTP has none yet),
 * each with its share of the batch's budget and the batch's completion window, and each is leased like the batch.
 */
export async function openImportTargets(
  redis: RedisClient,
  keys: RedisKeys,
  batchId: string,
  guard: ImportGuard,
  mode: 'new' | 'resume',
  onImportError: 'cancel' | 'keep',
): Promise<ImportTarget[]> {
  const own = await redis.hgetall(keys.batch(batchId));
  const shards = Number(own.shards) || 1;
  if (shards !== keys.shardCount) {
    guard.stop();
    throw new ImportRefused(
      `batch ${batchId} was made with CHATQ_SHARDS=${shards} (now ${keys.shardCount}): import into it with that shard count, or submit the file as a new batch`,
    );
  }
  if (shards === 1) return [{ keys, id: batchId, guard, userIndex: userIndexOf(keys, guard.project) }];
  return Promise.all(
    keys.shards.map(async (k, i) => {
      const id = batchPartId(batchId, i, shards);
      const made = await redis.hsetnx(k.batch(id), 'status', 'validating');
      if (made) {
        const expiresAt = Number(own.expires_at);
        const tx = redis.multi().hset(k.batch(id), {
          parent: batchId,
          project: guard.project,
          created_at: own.created_at ?? Date.now(),
          // A budget is shared out evenly: no part can take the batch past it.
          ...(own.max_cost_nano !== undefined ? { max_cost_nano: Math.floor(Number(own.max_cost_nano) / shards) } : {}),
          ...(expiresAt ? { completion_window: own.completion_window ?? '', expires_at: expiresAt } : {}),
        });
        if (expiresAt) tx.zadd(k.expiring, expiresAt, id);
        await tx.sadd(k.importing, id).exec();
      }
      const partGuard = await ImportGuard.begin(redis, k, id, made ? 'new' : mode, onImportError);
      return { keys: k, id, guard: partGuard, userIndex: userIndexOf(k, guard.project) };
    }),
  );
}
