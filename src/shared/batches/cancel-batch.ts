import type { AdmissionArg } from '../redis/admission.js';
import type { RedisClient } from '../redis/redis.js';
import { defineScript } from '../redis/script-contract.js';
import type { RedisKeys } from '../keys.js';
import { getBatch } from './read-store.js';
import { endIfPartsEnded, partsOf } from './sharded-batch.js';
import type { RequestQueues } from '../redis/request-queue.js';
import type { BatchStatus } from '../batch-record.js';

const cancelScript = defineScript<
  {
    now: number;
    ttl_s: number;
    prefix: string;
    /** The page: its first index in the batch's request list, and its size. */
    first: number;
    size: number;
    /** What a cancelled request ends with (JSON text: CancelReason). */
    error: string;
    batch_id: string;
    asker: 'user' | 'budget' | 'import' | 'expire';
    admission: AdmissionArg;
  },
  /** The batch's status, the new lane heads admitted to BullMQ, and how many ids the page read. */
  { status: BatchStatus | 'missing'; heads: string[]; read: number }
>()({
  file: new URL('./cancel-batch.lua', import.meta.url),
  keys: [
    'batch',
    'lanes',
    'batch_requests',
    'batch_custom_ids',
    'batch_errors',
    'importing',
    // The importer's lease, and the import's BullMQ job hash.
    'importer',
    'import_job',
    'events',
  ],
  args: {
    now: 'whole',
    ttl_s: 'whole',
    prefix: 'string',
    first: 'whole',
    size: 'whole',
    error: 'string',
    batch_id: 'string',
    asker: 'string',
    admission: 'table',
  },
});
const PAGE = 1_000;

/** The BullMQ job that imports a batch; a part has none of its own (its lease stands for its import), so its own slot's lease key. */
export const importJobOf = (keys: RedisKeys, batchId: string) =>
  keys.shardIndex >= 0 && keys.shardCount > 1 ? keys.batchImporter(batchId) : keys.importJob(batchId);

export interface CancelReason {
  code: 'cancelled' | 'budget_exceeded' | 'import_failed' | 'batch_expired';
  message: string;
}

const ASKER: Record<CancelReason['code'], 'user' | 'budget' | 'import' | 'expire'> = {
  cancelled: 'user',
  budget_exceeded: 'budget',
  import_failed: 'import',
  batch_expired: 'expire',
};

/**
 * Cancels every request of a batch that has not started (batch_expired: ends them "expired"); running ones finish.
 * Safe to call again (and from several places at once): each request is cancelled once. A batch still being
 * imported is cancelled as soon as its import ends. Returns the batch status afterwards.
 */
export async function cancelBatch(
  redis: RedisClient,
  keys: RedisKeys,
  queues: RequestQueues,
  batchId: string,
  ttlS: number,
  reason: CancelReason,
): Promise<BatchStatus | 'missing'> {
  const parts =
    keys.shardCount > 1
      ? partsOf(keys, batchId, { shards: (await redis.hget(keys.batch(batchId), 'shards')) ?? '' })
      : [];
  // A sharded batch whose parts have all ended but whose record has not yet: it ended as they did, before any cancel.
  if (parts.length > 0) await endIfPartsEnded(redis, keys, batchId, ttlS);
  const run: CancelRun = { redis, queues, ttlS, reason };
  const status = await cancelOne(run, keys, batchId);
  if (parts.length === 0) return status;
  // A sharded batch: the record first (a cancel asked while importing is seen by the importer), then every part.
  await Promise.all(parts.map((p) => cancelOne(run, p.keys, p.id)));
  await endIfPartsEnded(redis, keys, batchId, ttlS);
  return (await getBatch(redis, keys, batchId))?.status ?? 'missing';
}

/** What one cancel runs with, whichever batch or part it cancels. */
interface CancelRun {
  redis: RedisClient;
  queues: RequestQueues;
  ttlS: number;
  reason: CancelReason;
}

/** Cancels one batch (or one part of a sharded batch) page by page, adding the lane heads it frees to the queue. */
async function cancelOne(
  { redis, queues, ttlS, reason }: CancelRun,
  keys: RedisKeys,
  batchId: string,
): Promise<BatchStatus | 'missing'> {
  const batchKeys = {
    batch: keys.batch(batchId),
    lanes: keys.lanes,
    batch_requests: keys.batchRequests(batchId),
    batch_custom_ids: keys.batchCustomIds(batchId),
    batch_errors: keys.batchErrors(batchId),
    importing: keys.importing,
    importer: keys.batchImporter(batchId),
    import_job: importJobOf(keys, batchId),
    events: keys.events,
  };
  let status: BatchStatus | 'missing' = 'missing';
  for (let start = 0; ; start += PAGE) {
    const reply = await cancelScript.run(redis, batchKeys, {
      now: Date.now(),
      ttl_s: ttlS,
      prefix: keys.prefix,
      first: start,
      size: PAGE,
      error: JSON.stringify(reason),
      batch_id: batchId,
      asker: ASKER[reason.code],
      admission: await queues.admission.arg(),
    });
    status = reply.status;
    await queues.add(reply.heads);
    if (reply.read < PAGE) break;
  }
  return status;
}
