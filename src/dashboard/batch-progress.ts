import { getUsages, readBatchFields } from '../shared/batches/read-store.js';
import type { RedisKeys } from '../shared/keys.js';
import type { RedisClient } from '../shared/redis/redis.js';
import { batchDone, toBatchRecord, type BatchRecord } from '../shared/batch-record.js';

/** What a batch row shows, and what the live updates send: the same numbers on the page and over the wire. */
export interface BatchProgress {
  id: string;
  status: string;
  done: number;
  total: number;
  succeeded: number;
  /** Failed, skipped, cancelled and expired. */
  notSucceeded: number;
  costUsd: number;
  tokens: number;
  /** Of the graded requests; null when nothing is graded. */
  passRate: number | null;
}

export function progressOf(b: BatchRecord, cost: { cost_nano: number; total_tokens: number }): BatchProgress {
  const graded = b.evalPass + b.evalFail;
  return {
    id: b.id,
    status: b.status,
    done: batchDone(b),
    total: b.total,
    succeeded: b.succeeded,
    notSucceeded: batchDone(b) - b.succeeded,
    costUsd: cost.cost_nano / 1e9,
    tokens: cost.total_tokens,
    passRate: graded ? b.evalPass / graded : null,
  };
}

export interface BatchRow {
  batch: BatchRecord;
  progress: BatchProgress;
}

/** Batch records in one pipeline (sharded: each combined from its parts); missing ones are left out. */
export async function readBatchRecords(
  redis: RedisClient,
  keys: RedisKeys,
  ids: readonly string[],
): Promise<BatchRecord[]> {
  if (ids.length === 0) return [];
  const fields =
    keys.shardCount > 1
      ? await Promise.all(ids.map((id) => readBatchFields(redis, keys, id)))
      : ((await ids.reduce((p, id) => p.hgetall(keys.batch(id)), redis.pipeline()).exec()) ?? []).map(
          (r) => (r[1] ?? {}) as Record<string, string>,
        );
  return ids.map((id, i) => toBatchRecord(id, fields[i]!)).filter((b) => b !== null);
}

/** Batches with their usage (one fold, one pipeline each). */
export async function withProgress(
  redis: RedisClient,
  keys: RedisKeys,
  batches: readonly BatchRecord[],
): Promise<BatchRow[]> {
  const usage = await getUsages(
    redis,
    keys,
    batches.map((b) => ({ project: b.project, dim: 'batch' as const, key: b.id })),
  );
  return batches.map((batch, i) => ({ batch, progress: progressOf(batch, usage[i]!) }));
}

/** Batches and their usage, read together; missing ones are left out. */
export async function readBatches(redis: RedisClient, keys: RedisKeys, ids: readonly string[]): Promise<BatchRow[]> {
  return withProgress(redis, keys, await readBatchRecords(redis, keys, ids));
}
