import type { RequestQueues } from '../redis/request-queue.js';
import { LuaScript, type RedisClient } from '../redis/redis.js';
import { cancelBatch, type CancelReason } from './cancel-batch.js';
import type { RedisKeys } from '../keys.js';

const failScript = new LuaScript(new URL('./fail-import.lua', import.meta.url));

export interface ImportError {
  code: string;
  message: string;
}

/**
 * Ends an import that cannot finish: the batch is "failed" with the reason and the count it had enqueued, and those
 * requests are cancelled unless the batch said on_import_error "keep". Returns the batch status afterwards ("busy"
 * when another process holds the import's lease: `owner`, the failing import's, is not it).
 */
export async function failImport(
  redis: RedisClient,
  keys: RedisKeys,
  queues: RequestQueues,
  batchId: string,
  error: ImportError,
  rejectedLines: number,
  ttlS: number,
  owner = '',
): Promise<string> {
  const reason: CancelReason = {
    code: 'import_failed',
    message: `not sent: the batch's import failed (${error.code})`,
  };
  const [status, mode] = (await failScript.run(
    redis,
    [
      keys.batch(batchId),
      keys.importing,
      keys.batchImporter(batchId),
      keys.batchReserve(batchId),
      keys.events,
      keys.metrics,
    ],
    [batchId, Date.now(), JSON.stringify(error), rejectedLines, JSON.stringify(reason), owner],
  )) as [string, string];
  if (status !== 'failed' || mode === 'keep') return status;
  return cancelBatch(redis, keys, queues, batchId, ttlS, reason);
}
