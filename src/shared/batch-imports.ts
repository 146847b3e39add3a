import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { RedisKeys } from './keys.js';

/**
 * Batches created over HTTP are imported by the producer side, not in the HTTP request: the API records the
 * batch ("validating") and queues an import job; an import worker (producer/import-worker) parses the file.
 */
export const IMPORT_QUEUE = 'imports';

export const newBatchId = () => `batch_${randomUUID().replace(/-/g, '').slice(0, 24)}`;

export interface ImportJob {
  batchId: string;
  fileId: string;
  maxCostNano?: number;
}

export function openImportQueue(connection: Redis, prefix: string): Queue<ImportJob> {
  return new Queue<ImportJob>(IMPORT_QUEUE, { connection, prefix });
}

export interface NewBatch {
  batchId: string;
  name: string;
  input: string;
  metadata: Record<string, string>;
  inputFileId?: string;
  maxCostNano?: number;
}

/** Writes the batch record with status "validating" (the producer fills it in). */
export async function createBatchRecord(redis: Redis, keys: RedisKeys, b: NewBatch): Promise<void> {
  const now = Date.now();
  await redis
    .multi()
    .hset(keys.batch(b.batchId), {
      status: 'validating',
      name: b.name,
      input: b.input,
      created_at: now,
      metadata: JSON.stringify(b.metadata),
      ...(b.inputFileId ? { input_file_id: b.inputFileId } : {}),
      ...(b.maxCostNano !== undefined ? { max_cost_nano: b.maxCostNano } : {}),
    })
    .zadd(keys.batches, now, b.batchId)
    .exec();
}
