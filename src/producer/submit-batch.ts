import type { Readable } from 'node:stream';
import { LuaScript } from '../shared/redis/redis.js';
import { newBatchId } from '../shared/ids.js';
import { createBatchRecord } from '../shared/batches/batch-imports.js';
import type { CompletionWindow } from '../shared/completion-window.js';
import { cancelBatch } from '../shared/batches/cancel-batch.js';
import { DEFAULT_PROJECT, type RedisKeys } from '../shared/keys.js';
import { endIfPartsEnded } from '../shared/batches/sharded-batch.js';
import { failImport, type ImportError } from '../shared/batches/import-failure.js';
import { describeRedisError } from '../shared/redis/redis-errors.js';
import { IMPORT_LEASE_MS, ImportGuard } from './import-guard.js';
import type { ProducerContext } from './producer-context.js';
import { type ImportCounts, ImportRun, MAX_KEPT_ERRORS } from './import-run.js';
import { openImportTargets, type ImportTarget } from './import-targets.js';
import { findPrice } from '../shared/usage/pricing.js';
import { formatLineError, parseInput, type LineError, type ParsedLine, type ParseOptions } from './parse-input.js';

const finalizeScript = new LuaScript(new URL('./finalize-batch.lua', import.meta.url));

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

/** Validates a whole input without storing anything: for --strict, which rejects the file on any bad line. */
async function collectErrors(
  open: () => Readable,
  opts: ParseOptions,
): Promise<{ errors: LineError[]; count: number }> {
  const errors: LineError[] = [];
  let count = 0;
  for await (const parsed of parseInput(open(), opts)) {
    if (parsed.ok) continue;
    count += 1;
    if (errors.length < MAX_KEPT_ERRORS) errors.push(parsed.error);
  }
  return { errors, count };
}

/**
 * Creates a batch from a JSONL input and enqueues its requests in order, streaming: the input is never held whole.
 * Bad lines are reported with their line number and skipped (or, with `strict`, reject the file before anything is
 * stored). An import that cannot finish (Redis full or gone, a chunk refused) ends the batch "failed" with the
 * reason and throws ImportFailedError: it never stays "validating", and is never finalised short.
 */
export async function submitBatch(
  ctx: ProducerContext,
  open: () => Readable,
  opts: SubmitOptions,
): Promise<SubmitResult> {
  opts = { ...opts, outputLimit: (model) => findPrice(ctx.prices, model)?.maxOutput };
  if (opts.strict) {
    const { errors, count } = await collectErrors(open, opts);
    if (count > 0) throw new StrictInputError(errors, count);
  }
  const { redis, keys } = ctx;
  const batchId = opts.batchId ?? newBatchId();
  if (!opts.batchId) {
    await createBatchRecord(redis, keys, {
      batchId,
      project: opts.project ?? DEFAULT_PROJECT,
      name: opts.name ?? opts.source,
      input: opts.source,
      metadata: opts.metadata ?? {},
      ...(opts.maxCostNano !== undefined ? { maxCostNano: opts.maxCostNano } : {}),
      ...(opts.minPass !== undefined ? { minPass: opts.minPass } : {}),
      ...(opts.completionWindow ? { completionWindow: opts.completionWindow } : {}),
    });
  }
  const mode = opts.resume ? 'resume' : 'new';
  const guard = await ImportGuard.begin(redis, keys, batchId, mode, opts.onImportError ?? 'cancel');
  const targets = await openImportTargets(redis, keys, batchId, guard, mode, opts.onImportError ?? 'cancel');
  const run = new ImportRun(ctx, batchId, guard.project, targets, opts.source);
  const sharded = run.sharded;
  // Derived userids are the batch's project's (an API-made or resumed batch keeps the project it was made in).
  const parseOpts = { ...opts, project: guard.project, runSalt: batchId };
  try {
    for await (const parsed of parseInput(open(), parseOpts) as AsyncGenerator<ParsedLine>) {
      await run.add(parsed);
      // A cancel asked meanwhile: the rest of the input is not read (finalizeImport ends the batch cancelled).
      if (run.cancelAsked) break;
    }
    await run.end();
  } catch (err) {
    const stopped = sharded ? [guard, ...targets.map((t) => t.guard)] : [guard];
    for (const g of stopped) g.stop();
    await run.settle();
    run.endTrace('failed', err);
    if (sharded)
      await Promise.allSettled(targets.map((t) => importFailed(ctx, t.keys, t.id, t.guard.owner, err, 0, 0)));
    throw await importFailed(
      ctx,
      keys,
      batchId,
      guard.owner,
      err,
      run.counts.rejectedLines,
      run.counts.acceptedRequests,
    );
  }
  guard.stop();
  if (sharded) for (const t of targets) t.guard.stop();
  const status = await finalizeImport(ctx, batchId, sharded ? targets : [], run.counts.rejectedLines);
  run.endTrace(status);
  const errors = run.errors.sort((a, b) => a.line - b.line);
  return { batchId, ...run.counts, errors, status };
}

/**
 * Ends an import whose input was read to the end: its parts (a sharded batch's) and then the batch turn
 * "in_progress" (or end, when nothing is left to run); a cancel asked while it was importing is carried out now.
 */
async function finalizeImport(
  ctx: ProducerContext,
  batchId: string,
  parts: ImportTarget[],
  rejectedLines: number,
): Promise<string> {
  const { redis, keys } = ctx;
  const finalize = (k: RedisKeys, id: string, rejected: number) =>
    finalizeScript.run(
      redis,
      [
        k.batch(id),
        k.batchRequests(id),
        k.batchCustomIds(id),
        k.batchErrors(id),
        k.batches,
        k.importing,
        k.batchImporter(id),
        k.batchReserve(id),
        k.events,
      ],
      [Date.now(), rejected, ctx.resultTtlS, id],
    ) as Promise<string>;
  await Promise.all(parts.map((t) => finalize(t.keys, t.id, 0)));
  let status = await finalize(keys, batchId, rejectedLines);
  if (status === 'in_progress' && (await redis.hexists(keys.batch(batchId), 'cancel_requested'))) {
    status = await cancelBatch(redis, keys, ctx.queues, batchId, ctx.resultTtlS, {
      code: 'cancelled',
      message: 'cancelled before it was sent',
    });
  }
  // Parts that ended while the import went on (or were empty) end the batch now.
  if (parts.length > 0) status = (await endIfPartsEnded(redis, keys, batchId, ctx.resultTtlS)) ?? status;
  return status;
}

/** The enqueue script's answer to an importer whose lease lapsed while it could not reach Redis. */
function importLost(err: unknown): ImportError | undefined {
  const message = err instanceof Error ? err.message : '';
  if (!message.startsWith('IMPORT_LOST ')) return undefined;
  return {
    code: 'import_interrupted',
    message: `${message.slice('IMPORT_LOST '.length)} (this process could not reach Redis for longer than the lease, ${IMPORT_LEASE_MS / 1000} s)`,
  };
}

/** Records why an import stopped (the batch turns "failed"); when even that is refused, the batch is left for the reconciler. */
async function importFailed(
  ctx: ProducerContext,
  keys: RedisKeys,
  batchId: string,
  owner: string,
  err: unknown,
  rejectedLines: number,
  enqueued: number,
): Promise<ImportFailedError> {
  const problem: ImportError = importLost(err) ??
    describeRedisError(err) ?? { code: 'import_failed', message: err instanceof Error ? err.message : String(err) };
  let status = 'validating';
  try {
    status = await failImport(ctx.redis, keys, ctx.queues, batchId, problem, rejectedLines, ctx.resultTtlS, owner);
  } catch {
    // Redis refused even that (gone, or still full): the import lease lapses and the reconciler ends the batch.
  }
  return new ImportFailedError(batchId, problem, status, enqueued);
}
