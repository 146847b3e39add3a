import { gradingOptionsOf } from '../shared/batches/grading-metadata.js';
import { DelayedError } from 'bullmq';
import { IMPORT_QUEUE, type ImportJob } from '../shared/batches/batch-imports.js';
import { DEFAULT_PROJECT } from '../shared/keys.js';
import { FairTurns } from './fair-turns.js';

/** Imports one process runs at once. */
const IMPORT_SLOTS = 4;
/** Chunks the process's imports write at once (each import has up to 4 in flight alone). */
const CHUNK_TURNS = 4;
/** How soon an import held back (its project has all but one slot) asks again. */
const PROJECT_FULL_RECHECK_MS = 1_000;
import { Readable } from 'node:stream';
import { readFileContent } from '../shared/files/file-store.js';
import { retryLines } from '../shared/batches/retry-input.js';
import { startBackgroundWorker, type BackgroundWorker } from './background-worker.js';
import { ImportFailedError, ImportRefused } from './import-errors.js';
import type { ProducerServiceOptions } from './producer-context.js';
import { submitBatch } from './submit-batch.js';
import { getBatch } from '../shared/batches/read-store.js';

export interface ImportWorkerOptions extends ProducerServiceOptions {
  defaultModel?: string;
}

/**
 * Imports batches created over HTTP (an uploaded file, or a retry of another batch) and enqueues their requests,
 * like `chatq enqueue`.
 * An import that cannot finish ends its batch "failed" (never retried into duplicates); a redelivered job resumes
 * where the dead one stopped, or does nothing when the batch is no longer "validating".
 */
export function startImportWorker(opts: ImportWorkerOptions): BackgroundWorker {
  const { redis, keys, logger } = opts;
  /** This process's imports under way, by project: one project takes at most all but one of the import slots. */
  const running = new Map<string, number>();
  // They parse their input and write their chunks in turns, project by project.
  const ctx = { ...opts, importTurns: { parse: new FairTurns(1), write: new FairTurns(CHUNK_TURNS) } };
  return startBackgroundWorker<ImportJob>(
    opts,
    IMPORT_QUEUE,
    async (job, token) => {
      const data = job.data;
      const { batchId } = data;
      const project = data.project ?? (await redis.hget(keys.batch(batchId), 'project')) ?? DEFAULT_PROJECT;
      if ((running.get(project) ?? 0) >= IMPORT_SLOTS - 1) {
        // Another project's import may be waiting: this one waits out of the way, in the queue.
        await job.moveToDelayed(Date.now() + PROJECT_FULL_RECHECK_MS, token);
        throw new DelayedError();
      }
      running.set(project, (running.get(project) ?? 0) + 1);
      try {
        await importOne(data, batchId);
      } finally {
        running.set(project, running.get(project)! - 1);
      }
    },
    (job) => ({ batch: job?.data.batchId }),
    IMPORT_SLOTS,
  );

  async function importOne(data: ImportJob, batchId: string): Promise<void> {
    // An uploaded file, or (a retry) the requests another batch did not get done.
    const input =
      'retry' in data
        ? { source: `retry of ${data.retry.batchId}`, open: () => Readable.from(retryLines(redis, keys, data.retry)) }
        : { source: data.fileId, open: () => readFileContent(redis, keys, data.fileId) };
    // The batch's metadata may name its judge and grader, as --judge-model and --grader do on the command line.
    const grading = gradingOptionsOf((await getBatch(redis, keys, batchId))?.metadata ?? {});
    try {
      const result = await submitBatch(ctx, input.open, {
        source: input.source,
        batchId,
        ...(opts.defaultModel ? { defaultModel: opts.defaultModel } : {}),
        ...grading,
      });
      logger.info(
        { batch: batchId, requests: result.acceptedRequests, badLines: result.rejectedLines },
        'batch imported',
      );
    } catch (err) {
      if (err instanceof ImportRefused) return;
      if (!(err instanceof ImportFailedError)) throw err;
      logger.error(
        { batch: batchId, code: err.problem.code, enqueued: err.enqueued, status: err.status },
        `batch import failed: ${err.problem.message}`,
      );
    }
  }
}
