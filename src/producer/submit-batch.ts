import type { Readable } from 'node:stream';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { createBatchRecord, newBatchId } from '../shared/batch-imports.js';
import { cancelBatch } from '../shared/cancel-batch.js';
import type { RedisKeys } from '../shared/keys.js';
import type { Logger } from '../shared/logger.js';
import { LuaScript } from '../shared/redis.js';
import { addLaneHeads } from '../shared/request-queue.js';
import type { RequestDraft } from '../shared/request-record.js';
import { formatLineError, parseInput, type LineError, type ParsedLine, type ParseOptions } from './parse-input.js';

const enqueueScript = new LuaScript(new URL('./enqueue-requests.lua', import.meta.url));
const finalizeScript = new LuaScript(new URL('./finalize-batch.lua', import.meta.url));

/** Requests per enqueue script call, and calls in flight at once (one connection keeps them in order). */
const CHUNK_REQUESTS = 1_000;
const CHUNKS_IN_FLIGHT = 4;
/** Line errors kept in Redis and in memory per batch; the count goes on past it. */
const MAX_KEPT_ERRORS = 1_000;

export interface ProducerContext {
  redis: Redis;
  queue: Queue;
  keys: RedisKeys;
  resultTtlS: number;
}

/** What the producer's background services (imports, schedules) run with. */
export interface ProducerServiceOptions extends ProducerContext {
  redisUrl: string;
  logger: Logger;
}

export interface SubmitOptions extends ParseOptions {
  strict?: boolean;
  name?: string;
  metadata?: Record<string, string>;
  /** Fill this existing batch record (created "validating" by the API) instead of creating one. */
  batchId?: string;
  /** Cancel the rest of the batch once it has cost this much (nano-USD). */
  maxCostNano?: number;
}

export interface SubmitResult {
  batchId: string;
  acceptedRequests: number;
  acceptedLines: number;
  rejectedLines: number;
  /** The first MAX_KEPT_ERRORS line errors. */
  errors: LineError[];
  status: string;
}

export class StrictInputError extends Error {
  constructor(readonly errors: LineError[], readonly count: number) {
    super(`${count} bad line(s); --strict rejects the whole file:\n${errors.slice(0, 20).map(formatLineError).join('\n')}`);
  }
}

/** Validates a whole input without storing anything: for --strict, which rejects the file on any bad line. */
async function collectErrors(open: () => Readable, opts: ParseOptions): Promise<{ errors: LineError[]; count: number }> {
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
}

/**
 * Creates a batch from a JSONL input and enqueues its requests in order, streaming: the input is never held whole.
 * Bad lines are reported with their line number and skipped (or, with `strict`, reject the file before anything is stored).
 */
export async function submitBatch(ctx: ProducerContext, open: () => Readable, opts: SubmitOptions): Promise<SubmitResult> {
  if (opts.strict) {
    const { errors, count } = await collectErrors(open, opts);
    if (count > 0) throw new StrictInputError(errors, count);
  }
  const { redis, keys } = ctx;
  const batchId = opts.batchId ?? newBatchId();
  if (!opts.batchId) {
    await createBatchRecord(redis, keys, {
      batchId,
      name: opts.name ?? opts.source,
      input: opts.source,
      metadata: opts.metadata ?? {},
      ...(opts.maxCostNano !== undefined ? { maxCostNano: opts.maxCostNano } : {}),
    });
  }

  const errors: LineError[] = [];
  let rejectedLines = 0;
  let acceptedRequests = 0;
  let acceptedLines = 0;
  let seq = 0;
  let pending: PendingLine[] = [];
  let pendingRequests = 0;
  const inFlight = new Set<Promise<void>>();

  const reject = (error: LineError) => {
    rejectedLines += 1;
    if (errors.length < MAX_KEPT_ERRORS) {
      errors.push(error);
      void redis.rpush(keys.batchErrors(batchId), JSON.stringify(error));
    }
  };

  const flush = async () => {
    const lines = pending;
    pending = [];
    pendingRequests = 0;
    const keyList = [keys.batch(batchId), keys.batchRequests(batchId), keys.batchCustomIds(batchId), keys.lanes];
    const args: (string | number)[] = [batchId, Date.now(), keys.prefix];
    const groupStart: number[] = [];
    let index = 0;
    for (const { drafts } of lines) {
      groupStart.push(index);
      drafts.forEach((d, g) => {
        seq += 1;
        index += 1;
        const extra: Record<string, string | number> = {};
        if (d.onFailure === 'halt') extra.on_failure = 'halt';
        if (d.history === 'full') {
          extra.history = 'full';
          if (g > 0) extra.prev = `${batchId}-${seq - 1}`;
        }
        if (d.scriptId !== undefined) extra.script_id = d.scriptId;
        if (d.turn !== undefined) extra.turn = d.turn;
        if (d.expect !== undefined) extra.expect = JSON.stringify(d.expect);
        const hasExtra = Object.keys(extra).length > 0;
        args.push(`${batchId}-${seq}|${d.userid}|${seq}|${d.line}|${g === 0 ? drafts.length : 0}|${hasExtra ? 1 : 0}`, d.customId, d.model, JSON.stringify(d.body));
        if (hasExtra) args.push(JSON.stringify(extra));
      });
    }
    const [heads, rejectedGroups] = (await enqueueScript.run(redis, keyList, args)) as [string[], number[]];
    const rejectedSet = new Set(rejectedGroups);
    lines.forEach(({ line, drafts }, idx) => {
      if (rejectedSet.has(groupStart[idx]!)) {
        reject({ source: opts.source, line, field: 'custom_id', message: `duplicate custom_id "${drafts[0]!.customId}" in this batch; custom_id must be unique` });
      } else {
        acceptedLines += 1;
        acceptedRequests += drafts.length;
      }
    });
    await addLaneHeads(ctx.queue, heads);
  };

  const track = (p: Promise<void>) => {
    inFlight.add(p);
    p.finally(() => inFlight.delete(p)).catch(() => undefined);
  };

  for await (const parsed of parseInput(open(), opts) as AsyncGenerator<ParsedLine>) {
    if (!parsed.ok) {
      reject(parsed.error);
      continue;
    }
    pending.push({ line: parsed.line, drafts: parsed.drafts });
    pendingRequests += parsed.drafts.length;
    if (pendingRequests >= CHUNK_REQUESTS) {
      track(flush());
      if (inFlight.size >= CHUNKS_IN_FLIGHT) await Promise.race(inFlight);
    }
  }
  if (pending.length) track(flush());
  await Promise.all(inFlight);

  let status = (await finalizeScript.run(
    redis,
    [keys.batch(batchId), keys.batchRequests(batchId), keys.batchCustomIds(batchId), keys.batchErrors(batchId), keys.batches],
    [Date.now(), rejectedLines, ctx.resultTtlS],
  )) as string;
  if (status === 'in_progress' && (await redis.hexists(keys.batch(batchId), 'cancel_requested'))) {
    status = await cancelBatch(redis, keys, ctx.queue, batchId, ctx.resultTtlS, { code: 'cancelled', message: 'cancelled before it was sent' });
  }
  errors.sort((a, b) => a.line - b.line);
  return { batchId, acceptedRequests, acceptedLines, rejectedLines, errors, status };
}
