import type { Readable } from 'node:stream';
import { LuaScript, type RedisClient } from '../shared/redis.js';
import type { RedisTarget } from '../shared/redis-target.js';
import { newBatchId } from '../shared/ids.js';
import { createBatchRecord } from '../shared/batch-imports.js';
import type { CompletionWindow } from '../shared/completion-window.js';
import { cancelBatch } from '../shared/cancel-batch.js';
import { DEFAULT_PROJECT, shardOfUser, type RedisKeys } from '../shared/keys.js';
import { endIfPartsEnded } from '../shared/sharded-batch.js';
import type { Logger } from '../shared/logger.js';
import type { RequestQueues } from '../shared/request-queue.js';
import type { RequestDraft } from '../shared/request-record.js';
import { failImport, type ImportError } from '../shared/import-failure.js';
import { describeRedisError } from '../shared/redis-errors.js';
import { IMPORT_LEASE_MS, ImportGuard } from './import-guard.js';
import { groupBy } from '../shared/group-by.js';
import { openImportTargets, type ImportTarget } from './import-targets.js';
import { findPrice, type PriceTable } from '../shared/pricing.js';
import { formatLineError, parseInput, type LineError, type ParsedLine, type ParseOptions } from './parse-input.js';

const enqueueScript = new LuaScript(new URL('./enqueue-requests.lua', import.meta.url));
const finalizeScript = new LuaScript(new URL('./finalize-batch.lua', import.meta.url));

/** Requests (and body bytes) per enqueue script call, and calls in flight at once (one connection keeps them in order). */
const CHUNK_REQUESTS = 1_000;
const CHUNK_BYTES = 512 * 1024;
const CHUNKS_IN_FLIGHT = 4;
/** Line errors kept in Redis and in memory per batch; the count goes on past it. */
const MAX_KEPT_ERRORS = 1_000;

export interface ProducerContext {
  redis: RedisClient;
  queues: RequestQueues;
  keys: RedisKeys;
  resultTtlS: number;
  /** The price map: its models' output limits bound max_tokens when lines are parsed. */
  prices: PriceTable;
}

/** What the producer's background services (imports, schedules) run with. */
export interface ProducerServiceOptions extends ProducerContext {
  redisTarget: RedisTarget;
  logger: Logger;
}

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

export interface SubmitResult {
  batchId: string;
  acceptedRequests: number;
  acceptedLines: number;
  rejectedLines: number;
  /** Lines an earlier import of the batch already holds (a resumed import skips them). */
  alreadyPresent: number;
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

interface PendingLine {
  line: number;
  drafts: RequestDraft[];
  bodies: string[];
  /** The seq of its first request (a line's requests take consecutive ones, in input order). */
  firstSeq: number;
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
  const project = guard.project;
  const targets = await openImportTargets(redis, keys, batchId, guard, mode, opts.onImportError ?? 'cancel');
  const sharded = targets[0]!.id !== batchId;
  /** A sharded batch's custom_ids seen in this import (each part's script sees its own only). */
  const seenCustomIds = new Set<string>();
  const earlierSeq = Math.max(...targets.map((t) => t.guard.earlierSeq));

  const errors: LineError[] = [];
  let rejectedLines = 0;
  let acceptedRequests = 0;
  let acceptedLines = 0;
  let alreadyPresent = 0;
  let seq = earlierSeq;
  let pending: PendingLine[] = [];
  let pendingRequests = 0;
  let pendingBytes = 0;
  let unsavedErrors: string[] = [];
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;

  const reject = (error: LineError) => {
    rejectedLines += 1;
    if (errors.length < MAX_KEPT_ERRORS) {
      errors.push(error);
      unsavedErrors.push(JSON.stringify(error));
    }
  };

  const saveErrors = async () => {
    if (unsavedErrors.length === 0) return;
    const batch = unsavedErrors;
    unsavedErrors = [];
    await redis.rpush(keys.batchErrors(batchId), ...batch);
  };

  const duplicate = ({ line, drafts }: PendingLine) =>
    reject({
      source: opts.source,
      line,
      field: 'custom_id',
      message: `duplicate custom_id "${drafts[0]!.customId}" in this batch; custom_id must be unique`,
    });

  /** Enqueues one target's lines (a part's: the lines of its users) in one script; returns the lane heads. */
  const enqueue = async (target: ImportTarget, lines: PendingLine[]): Promise<string[]> => {
    const k = target.keys;
    const keyList = [
      k.batch(target.id),
      k.batchRequests(target.id),
      k.batchCustomIds(target.id),
      k.lanes,
      k.batchImporter(target.id),
    ];
    const args: (string | number)[] = [
      target.id,
      Date.now(),
      k.prefix,
      earlierSeq,
      project,
      ...target.userIndex,
      target.guard.owner,
      IMPORT_LEASE_MS,
    ];
    const groupStart: number[] = [];
    let index = 0;
    for (const { drafts, bodies, firstSeq } of lines) {
      groupStart.push(index);
      drafts.forEach((d, g) => {
        const at = firstSeq + g;
        index += 1;
        const extra: Record<string, string | number> = {};
        if (d.onFailure === 'halt') extra.on_failure = 'halt';
        if (d.history === 'full') {
          extra.history = 'full';
          if (g > 0) extra.prev = `${target.id}-${at - 1}`;
        }
        if (d.scriptId !== undefined) extra.script_id = d.scriptId;
        if (d.turn !== undefined) extra.turn = d.turn;
        if (d.expect !== undefined) extra.expect = JSON.stringify(d.expect);
        if (d.gapMs) extra.gap_ms = d.gapMs;
        const hasExtra = Object.keys(extra).length > 0;
        args.push(
          `${target.id}-${at}|${d.userid}|${at}|${d.line}|${g === 0 ? drafts.length : 0}|${hasExtra ? 1 : 0}`,
          d.customId,
          d.model,
          bodies[g]!,
        );
        if (hasExtra) args.push(JSON.stringify(extra));
      });
    }
    const [heads, rejectedGroups, heldGroups] = (await enqueueScript.run(redis, keyList, args)) as [
      string[],
      number[],
      number[],
    ];
    const rejectedSet = new Set(rejectedGroups);
    const heldSet = new Set(heldGroups);
    let accepted = 0;
    lines.forEach((pendingLine, idx) => {
      if (rejectedSet.has(groupStart[idx]!)) {
        duplicate(pendingLine);
      } else if (heldSet.has(groupStart[idx]!)) {
        alreadyPresent += 1;
      } else {
        acceptedLines += 1;
        acceptedRequests += pendingLine.drafts.length;
        accepted += pendingLine.drafts.length;
      }
    });
    // A sharded batch counts what its parts hold (its total when the import ends).
    if (sharded && accepted > 0) await redis.hincrby(keys.batch(batchId), 'enqueued', accepted);
    return heads;
  };

  const flush = async () => {
    const lines = pending;
    pending = [];
    pendingRequests = 0;
    pendingBytes = 0;
    const byTarget = groupBy(lines, (line) => targets[shardOfUser(line.drafts[0]!.userid, targets.length)]!);
    const heads = (await Promise.all([...byTarget].map(([target, group]) => enqueue(target, group)))).flat();
    await Promise.all([ctx.queues.add(heads), saveErrors()]);
  };

  // A chunk that fails is recorded before it leaves the in-flight set, so its error is never lost.
  const track = (p: Promise<void>) => {
    const tracked: Promise<void> = p
      .catch((err: unknown) => {
        failure ??= err;
      })
      .finally(() => inFlight.delete(tracked));
    inFlight.add(tracked);
  };
  const throwIfFailed = () => {
    if (failure !== undefined) throw failure;
  };

  try {
    for await (const parsed of parseInput(open(), opts) as AsyncGenerator<ParsedLine>) {
      if (!parsed.ok) {
        reject(parsed.error);
        continue;
      }
      const bodies = parsed.drafts.map((d) => JSON.stringify(d.body));
      const pendingLine = { line: parsed.line, drafts: parsed.drafts, bodies, firstSeq: seq + 1 };
      if (sharded && parsed.drafts.some((d) => seenCustomIds.has(d.customId))) {
        duplicate(pendingLine);
        continue;
      }
      if (sharded) for (const d of parsed.drafts) seenCustomIds.add(d.customId);
      seq += parsed.drafts.length;
      pending.push(pendingLine);
      pendingRequests += parsed.drafts.length;
      pendingBytes += bodies.reduce((a, b) => a + b.length, 0);
      if (pendingRequests >= CHUNK_REQUESTS || pendingBytes >= CHUNK_BYTES) {
        track(flush());
        if (inFlight.size >= CHUNKS_IN_FLIGHT) await Promise.race(inFlight);
        throwIfFailed();
      }
    }
    if (pending.length) track(flush());
    await Promise.all(inFlight);
    throwIfFailed();
    await saveErrors();
  } catch (err) {
    const stopped = sharded ? [guard, ...targets.map((t) => t.guard)] : [guard];
    for (const g of stopped) g.stop();
    await Promise.allSettled(inFlight);
    if (sharded)
      await Promise.allSettled(targets.map((t) => importFailed(ctx, t.keys, t.id, t.guard.owner, err, 0, 0)));
    throw await importFailed(ctx, keys, batchId, guard.owner, err, rejectedLines, acceptedRequests);
  }
  guard.stop();

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
  if (sharded) {
    for (const t of targets) t.guard.stop();
    await Promise.all(targets.map((t) => finalize(t.keys, t.id, 0)));
  }
  let status = await finalize(keys, batchId, rejectedLines);
  if (status === 'in_progress' && (await redis.hexists(keys.batch(batchId), 'cancel_requested'))) {
    status = await cancelBatch(redis, keys, ctx.queues, batchId, ctx.resultTtlS, {
      code: 'cancelled',
      message: 'cancelled before it was sent',
    });
  }
  // Parts that ended while the import went on (or were empty) end the batch now.
  if (sharded) status = (await endIfPartsEnded(redis, keys, batchId, ctx.resultTtlS)) ?? status;
  errors.sort((a, b) => a.line - b.line);
  return { batchId, acceptedRequests, acceptedLines, rejectedLines, alreadyPresent, errors, status };
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
