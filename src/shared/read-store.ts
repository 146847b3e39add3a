import type { Redis } from 'ioredis';
import type { RedisKeys, UsageDimension } from './keys.js';
import { REQUEST_FIELDS, toBatchRecord, toStoredRequest, type BatchRecord, type StoredRequest } from './request-record.js';

/** Reads of what workers wrote: batches, requests in input order, usage aggregates. Shared by the CLI and the API. */

export async function getBatch(redis: Redis, keys: RedisKeys, id: string): Promise<BatchRecord | null> {
  return toBatchRecord(id, await redis.hgetall(keys.batch(id)));
}

export async function getRequests(redis: Redis, keys: RedisKeys, ids: readonly string[]): Promise<(StoredRequest | null)[]> {
  if (ids.length === 0) return [];
  const pipeline = redis.pipeline();
  for (const id of ids) pipeline.hmget(keys.request(id), ...REQUEST_FIELDS).get(keys.requestBody(id)).get(keys.requestResponse(id));
  const rows = (await pipeline.exec())!;
  return ids.map((id, i) => {
    const [err, values] = rows[i * 3]!;
    return err ? null : toStoredRequest(id, values as (string | null)[], rows[i * 3 + 1]![1] as string | null, rows[i * 3 + 2]![1] as string | null);
  });
}

/** A batch's requests in input order, read in pages. */
export async function* readBatchRequests(redis: Redis, keys: RedisKeys, batchId: string, pageSize = 500): AsyncGenerator<StoredRequest> {
  for (let start = 0; ; start += pageSize) {
    const ids = await redis.lrange(keys.batchRequests(batchId), start, start + pageSize - 1);
    for (const r of await getRequests(redis, keys, ids)) if (r) yield r;
    if (ids.length < pageSize) return;
  }
}

export interface UsageRow {
  key: string;
  requests: number;
  succeeded: number;
  failed: number;
  prompt_tokens: number;
  cached_tokens: number;
  completion_tokens: number;
  reasoning_tokens: number;
  total_tokens: number;
  cost_nano: number;
  unpriced: number;
}

export function toUsageRow(key: string, h: Record<string, string>): UsageRow {
  const n = (f: string) => Number(h[f] ?? 0);
  return {
    key,
    requests: n('requests'),
    succeeded: n('succeeded'),
    failed: n('failed'),
    prompt_tokens: n('prompt_tokens'),
    cached_tokens: n('cached_tokens'),
    completion_tokens: n('completion_tokens'),
    reasoning_tokens: n('reasoning_tokens'),
    total_tokens: n('total_tokens'),
    cost_nano: n('cost_nano'),
    unpriced: n('unpriced'),
  };
}

export async function getUsage(redis: Redis, keys: RedisKeys, dim: UsageDimension, key: string): Promise<UsageRow> {
  return toUsageRow(key, await redis.hgetall(keys.usage(dim, key)));
}

/** Every aggregate of one dimension, sorted by key; `only` narrows to the given keys. */
export async function listUsage(redis: Redis, keys: RedisKeys, dim: UsageDimension, only?: (key: string) => boolean): Promise<UsageRow[]> {
  const members = (await redis.smembers(keys.usageIndex(dim))).filter((m) => !only || only(m)).sort();
  const pipeline = redis.pipeline();
  for (const m of members) pipeline.hgetall(keys.usage(dim, m));
  const rows = (await pipeline.exec()) ?? [];
  return members.map((m, i) => toUsageRow(m, (rows[i]?.[1] ?? {}) as Record<string, string>));
}
