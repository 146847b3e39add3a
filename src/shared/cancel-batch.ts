import type { Queue } from 'bullmq';
import { LuaScript, type RedisClient } from './redis.js';
import type { RedisKeys } from './keys.js';
import { addLaneHeads } from './request-queue.js';
import type { BatchStatus } from './request-record.js';

const cancelScript = new LuaScript(new URL('./cancel-batch.lua', import.meta.url));
const PAGE = 1_000;

export interface CancelReason {
  code: 'cancelled' | 'budget_exceeded' | 'import_failed' | 'batch_expired';
  message: string;
}

const ASKER: Record<CancelReason['code'], string> = { cancelled: 'user', budget_exceeded: 'budget', import_failed: 'import', batch_expired: 'expire' };

/**
 * Cancels every request of a batch that has not started (batch_expired: ends them "expired"); running ones finish.
 * Safe to call again (and from several places at once): each request is cancelled once. A batch still being
 * imported is cancelled as soon as its import ends. Returns the batch status afterwards.
 */
export async function cancelBatch(redis: RedisClient, keys: RedisKeys, queue: Queue, batchId: string, ttlS: number, reason: CancelReason): Promise<BatchStatus | 'missing'> {
  const batchKeys = [
    keys.batch(batchId), keys.lanes, keys.batchRequests(batchId), keys.batchCustomIds(batchId), keys.batchErrors(batchId),
    keys.importing, keys.batchImporter(batchId), keys.importJob(batchId), keys.events,
  ];
  let status: string = 'missing';
  for (let start = 0; ; start += PAGE) {
    const [s, heads, read] = (await cancelScript.run(redis, batchKeys, [Date.now(), ttlS, keys.prefix, start, PAGE, JSON.stringify(reason), batchId, ASKER[reason.code]])) as [string, string[], number];
    status = s;
    await addLaneHeads(queue, heads);
    if (read < PAGE) break;
  }
  return status as BatchStatus | 'missing';
}
