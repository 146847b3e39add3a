import type { BatchRecord } from '../shared/batch-record.js';

/** The errors chatq's library throws, each a class a caller can tell apart with `instanceof`. */
export class ChatqError extends Error {
  override name = 'ChatqError';
}

/** A line of the input that cannot be sent: where (source, line, field) and why. Thrown with `strict`. */
export class BadLineError extends ChatqError {
  override name = 'BadLineError';
  constructor(
    readonly source: string,
    readonly line: number,
    readonly field: string | undefined,
    readonly reason: string,
    /** Bad lines in the whole input (this is the first). */
    readonly count = 1,
  ) {
    super(
      `${source}:${line}:${field ? ` ${field}:` : ''} ${reason}${count > 1 ? ` (and ${count - 1} more bad lines)` : ''}`,
    );
  }
}

/** Redis cannot be reached or used (REDIS_URL, its password, a cluster that is down): the reason says which. */
export class RedisUnavailableError extends ChatqError {
  override name = 'RedisUnavailableError';
}

/** No batch with that id (unknown, or its results expired). */
export class BatchNotFoundError extends ChatqError {
  override name = 'BatchNotFoundError';
  constructor(readonly batchId: string) {
    super(`no batch "${batchId}" (unknown, or its results expired)`);
  }
}

/**
 * An import that stopped before the end of its input (Redis full or gone): its batch ended "failed" with what it had
 * enqueued (cancelled, or kept with onImportError "keep"); submit the same input into it again to add the rest.
 */
export class ImportStoppedError extends ChatqError {
  override name = 'ImportStoppedError';
  constructor(
    readonly batchId: string,
    readonly enqueued: number,
    reason: string,
  ) {
    super(`the import of batch ${batchId} stopped after ${enqueued} requests: ${reason}`);
  }
}

/** A batch stopped by its budget (max_cost_usd): what it did before is in `batch`. */
export class BudgetExceededError extends ChatqError {
  override name = 'BudgetExceededError';
  constructor(readonly batch: BatchRecord) {
    super(`batch ${batch.id} was stopped by its budget: ${batch.cancelled} requests were not sent`);
  }
}
