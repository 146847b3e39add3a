import type { ImportError } from '../shared/batches/import-failure.js';
import { formatLineError, type LineError } from './parse-input.js';

/** The import cannot begin: no such batch, one that takes no more requests, another importer, another shard count. */
export class ImportRefused extends Error {}

/** --strict and a bad line: nothing was stored. */
export class StrictInputError extends Error {
  constructor(
    readonly errors: LineError[],
    readonly count: number,
  ) {
    super(
      `${count} bad line(s); --strict rejects the whole file:\n${errors.slice(0, 20).map(formatLineError).join('\n')}`,
    );
  }
}

/** The import stopped before the end of its input: the batch is "failed" (or could not even be marked so). */
export class ImportFailedError extends Error {
  constructor(
    readonly batchId: string,
    readonly problem: ImportError,
    /** The batch status afterwards: "failed", or "validating" when Redis refused even that. */
    readonly status: string,
    readonly enqueued: number,
  ) {
    super(`import failed: ${problem.message}`);
  }
}
