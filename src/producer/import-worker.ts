import { IMPORT_QUEUE, type ImportJob } from '../shared/batch-imports.js';
import { readFileContent } from '../shared/file-store.js';
import { startBackgroundWorker, type BackgroundWorker } from './background-worker.js';
import { submitBatch, type ProducerServiceOptions } from './submit-batch.js';

export interface ImportWorkerOptions extends ProducerServiceOptions {
  defaultModel?: string;
}

/** Imports batches created over HTTP: parses the uploaded file and enqueues its requests, like `chatq enqueue`. */
export function startImportWorker(opts: ImportWorkerOptions): BackgroundWorker {
  const { redis, keys, logger } = opts;
  return startBackgroundWorker<ImportJob>(
    opts,
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
    (job) => ({ batch: job?.data.batchId }),
  );
}
