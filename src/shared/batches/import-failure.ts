import type { RequestQueues } from '../redis/request-queue.js';
import type { RedisClient } from '../redis/redis.js';
import { defineScript } from '../redis/script-contract.js';
import { cancelBatch, type CancelReason } from './cancel-batch.js';
import type { RedisKeys } from '../keys.js';

const failScript = defineScript<
  {
    batch_id: string;
    now: number;
    /** Why it stopped. */
    error: ImportError;
    rejected_lines: number;
    /**
     * What its requests are cancelled with (CancelReason as JSON text: kept as the batch's cancel_reason, so that a
     * worker that meets one of them still unsent cancels it the same way).
     */
    cancel_reason: string;
    /** The lease owner of the import that failed ("" for the reconciler, which ends only imports whose lease lapsed). */
    owner: string;
  },
  /** The batch's status after ("busy": another process imports it), and its on_import_error. */
  { status: string; mode: 'cancel' | 'keep' }
>()({
  file: new URL('./fail-import.lua', import.meta.url),
  // The batch, the importing set, the importer's lease, its memory reserve, the batch events, and the metrics hash (a
  // batch's failed import counts once there as "import_failed"; its parts', a sharded batch's, do not).
  keys: ['batch', 'importing', 'importer', 'reserve', 'events', 'metrics'],
  args: {
    batch_id: 'string',
    now: 'whole',
    error: 'table',
    rejected_lines: 'whole',
    cancel_reason: 'string',
    owner: 'string',
  },
});

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
  const { status, mode } = await failScript.run(
    redis,
    {
      batch: keys.batch(batchId),
      importing: keys.importing,
      importer: keys.batchImporter(batchId),
      reserve: keys.batchReserve(batchId),
      events: keys.events,
      metrics: keys.metrics,
    },
    {
      batch_id: batchId,
      now: Date.now(),
      error,
      rejected_lines: rejectedLines,
      cancel_reason: JSON.stringify(reason),
      owner,
    },
  );
  if (status !== 'failed' || mode === 'keep') return status;
  return cancelBatch(redis, keys, queues, batchId, ttlS, reason);
}
