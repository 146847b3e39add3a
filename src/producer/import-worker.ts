import { IMPORT_QUEUE, type ImportJob } from '../shared/batch-imports.js';
import { readFileContent } from '../shared/file-store.js';
import { startBackgroundWorker, type BackgroundWorker } from './background-worker.js';
import { ImportRefused } from './import-guard.js';
import { ImportFailedError, submitBatch, type ProducerServiceOptions } from './submit-batch.js';

export interface ImportWorkerOptions extends ProducerServiceOptions {
  defaultModel?: string;
}

/**
 * Imports batches created over HTTP: parses the uploaded file and enqueues its requests, like `chatq enqueue`.
 * An import that cannot finish ends its batch "failed" (never retried into duplicates); a redelivered job resumes
 * where the dead one stopped, or does nothing when the batch is no longer "validating".
 */
export function startImportWorker(opts: ImportWorkerOptions): BackgroundWorker {
  const { redis, keys, logger } = opts;
  return startBackgroundWorker<ImportJob>(
    opts,
    IMPORT_QUEUE,
    async (job) => {
      const { batchId, fileId } = job.data;
      try {
        const result = await submitBatch(
          { redis, queue: opts.queue, keys, resultTtlS: opts.resultTtlS },
          () => readFileContent(redis, keys.prefix, fileId),
          { source: fileId, batchId, ...(opts.defaultModel ? { defaultModel: opts.defaultModel } : {}) },
        );
        logger.info({ batch: batchId, requests: result.acceptedRequests, badLines: result.rejectedLines }, 'batch imported');
      } catch (err) {
        if (err instanceof ImportRefused) return;
        if (!(err instanceof ImportFailedError)) throw err;
        logger.error({ batch: batchId, code: err.problem.code, enqueued: err.enqueued, status: err.status }, `batch import failed: ${err.problem.message}`);
      }
    },
    (job) => ({ batch: job?.data.batchId }),
  );
}
