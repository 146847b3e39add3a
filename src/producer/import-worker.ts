import { Worker } from 'bullmq';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { IMPORT_QUEUE, type ImportJob } from '../shared/batch-imports.js';
import { readFileContent } from '../shared/file-store.js';
import type { RedisKeys } from '../shared/keys.js';
import type { Logger } from '../shared/logger.js';
import { connectRedis } from '../shared/redis.js';
import { submitBatch } from './submit-batch.js';

export interface ImportWorkerOptions {
  redis: Redis;
  redisUrl: string;
  keys: RedisKeys;
  queue: Queue;
  resultTtlS: number;
  defaultModel?: string;
  logger: Logger;
}

/** Imports batches created over HTTP: parses the uploaded file and enqueues its requests, like `chatq enqueue`. */
export function startImportWorker(opts: ImportWorkerOptions): { close(): Promise<void> } {
  const { redis, keys, logger } = opts;
  const blocking = connectRedis(opts.redisUrl, 'chatq-import');
  const worker = new Worker<ImportJob>(
    IMPORT_QUEUE,
    async (job) => {
      const { batchId, fileId } = job.data;
      // A batch already imported (or cancelled) is left alone, so a redelivered job does nothing.
      if ((await redis.hget(keys.batch(batchId), 'status')) !== 'validating') return;
      const result = await submitBatch(
        { redis, queue: opts.queue, keys, resultTtlS: opts.resultTtlS },
        () => readFileContent(redis, keys.prefix, fileId),
        { source: fileId, batchId, ...(opts.defaultModel ? { defaultModel: opts.defaultModel } : {}) },
      );
      logger.info({ batch: batchId, requests: result.acceptedRequests, badLines: result.rejectedLines }, 'batch imported');
    },
    { connection: blocking, prefix: keys.prefix, concurrency: 2, removeOnComplete: { count: 100 }, removeOnFail: { count: 1000 } },
  );
  worker.on('failed', (job, err) => logger.error({ batch: job?.data.batchId, err: err.message }, 'batch import failed'));
  return {
    async close() {
      await worker.close();
      blocking.disconnect();
    },
  };
}
