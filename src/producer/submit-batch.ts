/**
 * A file's way into Redis, top to bottom: (1) with --strict, the whole input is checked before anything is stored;
 * (2) the batch is made (or it is the API's, or an earlier import's); (3) its leases are taken and its targets opened
 * (import-leases); (4) its lines are read, parsed (parse-input: every input format is below it) and enqueued in chunks
 * (import-run); (5) the import ends: the batch runs (import-end), or it stopped short and is failed.
 */
import type { Readable } from 'node:stream';
import { createBatchRecord } from '../shared/batches/batch-imports.js';
import type { CompletionWindow } from '../shared/completion-window.js';
import { newBatchId } from '../shared/ids.js';
import { DEFAULT_PROJECT } from '../shared/keys.js';
import { findPrice } from '../shared/usage/pricing.js';
import { abandonImport, endImport } from './import-end.js';
import { StrictInputError } from './import-errors.js';
import { beginImport } from './import-leases.js';
import { type ImportCounts, ImportRun, MAX_KEPT_ERRORS } from './import-run.js';
import { parseInput, type LineError, type ParseOptions } from './parse-input.js';
import type { ProducerContext } from './producer-context.js';
import { importUserids } from './userid-scheme.js';

export type OnImportError = 'cancel' | 'keep';

export interface SubmitOptions extends ParseOptions {
  strict?: boolean;
  name?: string;
  metadata?: Record<string, string>;
  /** Fill this existing batch record (created "validating" by the API) instead of creating one. */
  batchId?: string;
  /** With batchId: add to that batch the custom_ids it lacks (a re-run of the same file after a failed import). */
  resume?: boolean;
  /** What happens to the requests already enqueued when the import cannot finish (default: cancel them). */
  onImportError?: OnImportError;
  /** Cancel the rest of the batch once it has cost this much (nano-USD). */
  maxCostNano?: number;
  /** The least pass rate of its graded requests (a scheduled evaluation): below it, an eval.failed webhook. */
  minPass?: number;
  /** The project a new batch belongs to (default: "default"); a resumed or API-made batch keeps its own. */
  project?: string;
  /** A new batch's completion window ("24h", "90m"): past it, what is not done ends "expired". None: no limit. */
  completionWindow?: CompletionWindow;
}

export interface SubmitResult extends ImportCounts {
  batchId: string;
  /** The first MAX_KEPT_ERRORS line errors. */
  errors: LineError[];
  status: string;
}

/** --strict: reads the whole input without storing anything; any bad line rejects the file. */
async function rejectIfAnyBad(input: Readable, opts: ParseOptions): Promise<void> {
  const errors: LineError[] = [];
  let count = 0;
  for await (const parsed of parseInput(input, opts)) {
    if (parsed.ok) continue;
    count += 1;
    if (errors.length < MAX_KEPT_ERRORS) errors.push(parsed.error);
  }
  if (count > 0) throw new StrictInputError(errors, count);
}

/** A new batch's record ("validating" until its import ends). */
async function newBatch(ctx: ProducerContext, opts: SubmitOptions): Promise<string> {
  const batchId = newBatchId();
  await createBatchRecord(ctx.redis, ctx.keys, {
    batchId,
    project: opts.project ?? DEFAULT_PROJECT,
    name: opts.name ?? opts.source,
    input: opts.source,
    metadata: opts.metadata ?? {},
    ...(opts.maxCostNano !== undefined ? { maxCostNano: opts.maxCostNano } : {}),
    ...(opts.minPass !== undefined ? { minPass: opts.minPass } : {}),
    ...(opts.completionWindow ? { completionWindow: opts.completionWindow } : {}),
  });
  return batchId;
}

/**
 * Creates a batch from an input and enqueues its requests in order, streaming: the input is never held whole. Bad
 * lines are reported with their line number and skipped (or, with `strict`, reject the file before anything is
 * stored). An import that cannot finish (Redis full or gone, a chunk refused) ends the batch "failed" with the
 * reason and throws ImportFailedError: it never stays "validating", and is never finalised short.
 */
export async function submitBatch(
  ctx: ProducerContext,
  open: () => Readable,
  opts: SubmitOptions,
): Promise<SubmitResult> {
  opts = { ...opts, outputLimit: (model) => findPrice(ctx.prices, model)?.maxOutput };
  if (opts.strict) await rejectIfAnyBad(open(), opts);
  const batchId = opts.batchId ?? (await newBatch(ctx, opts));
  const mode = opts.resume ? 'resume' : 'new';
  const leases = await beginImport(ctx.redis, ctx.keys, batchId, mode, opts.onImportError ?? 'cancel');
  const run = new ImportRun(ctx, batchId, leases, opts.source);
  try {
    // Derived userids are the batch's project's (an API-made or resumed batch keeps the project it was made in).
    const userids = await importUserids(ctx.redis, ctx.keys, ctx.userids, leases.project);
    await run.importAll(parseInput(open(), { ...opts, userids, runSalt: batchId }));
  } catch (err) {
    await run.settle();
    run.endTrace('failed', err);
    throw await abandonImport(ctx, batchId, leases, err, run.counts);
  }
  const status = await endImport(ctx, batchId, leases, run.counts.rejectedLines);
  run.endTrace(status);
  return { batchId, ...run.counts, errors: run.errors.sort((a, b) => a.line - b.line), status };
}
