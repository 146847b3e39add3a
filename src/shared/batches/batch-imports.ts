import { Queue } from 'bullmq';
import { reportErrors, type RedisClient } from '../redis/redis.js';
import { DEFAULT_PROJECT, type RedisKeys } from '../keys.js';

/** BullMQ's lowest priority. */
const MAX_PRIORITY = 2_097_152;
import { importJobOf } from './cancel-batch.js';
import type { CompletionWindow } from '../completion-window.js';
import type { RetrySelection } from './retry-input.js';

/**
 * Batches created over HTTP are imported by the producer side, not in the HTTP request: the API records the
 * batch ("validating") and queues an import job; an import worker (producer/import-worker) parses the file.
 */
export const IMPORT_QUEUE = 'imports';

/** An import: an uploaded file, or (a retry) what another batch did not get done; of a project. */
export type ImportJob = ({ batchId: string; fileId: string } | { batchId: string; retry: RetrySelection }) & {
  project?: string;
};

export function openImportQueue(connection: RedisClient, prefix: string): Queue<ImportJob> {
  return reportErrors(new Queue<ImportJob>(IMPORT_QUEUE, { connection, prefix }));
}

export interface NewBatch {
  batchId: string;
  /** The project that owns the batch (and so its requests, results and usage). */
  project: string;
  name: string;
  input: string;
  metadata: Record<string, string>;
  inputFileId?: string;
  maxCostNano?: number;
  minPass?: number;
  /** Past it, what is not done ends "expired"; without one, the batch runs until it is done. */
  completionWindow?: CompletionWindow;
}

/**
 * Writes the batch record with status "validating" (the producer fills it in). Sharded, the record says over how
 * many shards its parts are (made by the import); the parts expire, not the record.
 */
export async function createBatchRecord(redis: RedisClient, keys: RedisKeys, b: NewBatch): Promise<void> {
  const now = Date.now();
  const window = b.completionWindow;
  const sharded = keys.shardCount > 1;
  const tx = redis.multi();
  if (window && !sharded) tx.zadd(keys.expiring, now + window.ms, b.batchId);
  tx.hset(keys.batch(b.batchId), {
    status: 'validating',
    project: b.project,
    name: b.name,
    input: b.input,
    created_at: now,
    metadata: JSON.stringify(b.metadata),
    ...(b.inputFileId ? { input_file_id: b.inputFileId } : {}),
    ...(b.maxCostNano !== undefined ? { max_cost_nano: b.maxCostNano } : {}),
    ...(b.minPass !== undefined ? { min_pass: b.minPass } : {}),
    ...(window ? { completion_window: window.text, expires_at: now + window.ms } : {}),
    ...(sharded ? { shards: keys.shardCount } : {}),
  })
    .zadd(keys.batches, now, b.batchId)
    .zadd(keys.projectBatches(b.project), now, b.batchId)
    .sadd(keys.projects, b.project)
    .sadd(keys.importing, b.batchId);
  if (sharded) tx.sadd(keys.openShardedBatches, b.batchId);
  // Work is written under this shard count: another is refused until it is done (shard-count.ts).
  tx.set(keys.shardsInUse, keys.shardCount);
  await tx.exec();
}

/** True while a batch's import runs or waits to run: its importer holds the lease, or its HTTP import job is not done. */
export async function importAlive(redis: RedisClient, keys: RedisKeys, batchId: string): Promise<boolean> {
  const jobKey = importJobOf(keys, batchId);
  const replies = await redis
    .multi()
    .exists(keys.batchImporter(batchId))
    .exists(jobKey)
    .hexists(jobKey, 'finishedOn')
    .exec();
  const [lease, job, finished] = replies!.map(([, v]) => v as number);
  return lease === 1 || (job === 1 && finished === 0);
}

/**
 * Queues a batch's import (its record made by createBatchRecord) behind the other imports of its project, not behind
 * every import: its BullMQ priority is its rank among its project's batches being imported (1 for a project's only
 * one), so that each project's next import comes before another project's later ones.
 */
export async function queueImport(
  redis: RedisClient,
  keys: RedisKeys,
  imports: Queue<ImportJob>,
  job: ImportJob & { project: string },
): Promise<void> {
  const importing = await redis.smembers(keys.importing);
  const projects = importing.length
    ? await redis.pipeline(importing.map((id) => ['hget', keys.batch(id), 'project'])).exec()
    : [];
  const rank = (projects ?? []).filter(([, p]) => (p ?? DEFAULT_PROJECT) === job.project).length;
  await imports.add('import', job, { jobId: job.batchId, priority: Math.min(Math.max(1, rank), MAX_PRIORITY) });
}
