import type { RedisClient } from './redis.js';
import { DEFAULT_PROJECT, type RedisKeys, type StoredUsageDimension } from './keys.js';
import type { Scope } from './scope.js';
import { decodeResponse } from './response-codec.js';
import { foldUsage } from './usage-fold.js';
import { REQUEST_FIELDS, toBatchRecord, toStoredRequest, type BatchRecord, type StoredRequest } from './request-record.js';

/** Reads of what workers wrote: batches, requests in input order, usage aggregates. Shared by the CLI and the API. */

export async function getBatch(redis: RedisClient, keys: RedisKeys, id: string): Promise<BatchRecord | null> {
  return toBatchRecord(id, await redis.hgetall(keys.batch(id)));
}

export async function getRequests(redis: RedisClient, keys: RedisKeys, ids: readonly string[]): Promise<(StoredRequest | null)[]> {
  if (ids.length === 0) return [];
  const pipeline = redis.pipeline();
  for (const id of ids) pipeline.hmget(keys.request(id), ...REQUEST_FIELDS).get(keys.requestBody(id)).getBuffer(keys.requestResponse(id));
  const rows = (await pipeline.exec())!;
  return ids.map((id, i) => {
    const [err, values] = rows[i * 3]!;
    return err ? null : toStoredRequest(id, values as (string | null)[], rows[i * 3 + 1]![1] as string | null, decodeResponse(rows[i * 3 + 2]![1] as Buffer | null));
  });
}

/** A batch's requests in input order, read in pages. */
export async function* readBatchRequests(redis: RedisClient, keys: RedisKeys, batchId: string, pageSize = 500): AsyncGenerator<StoredRequest> {
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

/** One aggregate, with every pending record folded in first (a batch's tokens arrive through the fold). */
export async function getUsage(redis: RedisClient, keys: RedisKeys, project: string, dim: StoredUsageDimension, key: string): Promise<UsageRow> {
  return (await getUsages(redis, keys, [{ project, dim, key }]))[0]!;
}

/** Several aggregates in one pipeline, after one fold. */
export async function getUsages(redis: RedisClient, keys: RedisKeys, wanted: readonly { project: string; dim: StoredUsageDimension; key: string }[]): Promise<UsageRow[]> {
  await foldUsage(redis, keys);
  if (wanted.length === 0) return [];
  const replies = (await wanted.reduce((p, w) => p.hgetall(keys.usage(w.project, w.dim, w.key)), redis.pipeline()).exec()) ?? [];
  return wanted.map((w, i) => toUsageRow(w.key, (replies[i]?.[1] ?? {}) as Record<string, string>));
}

/** The projects a scope covers (an admin's: every project that has made something). */
export async function projectsOf(redis: RedisClient, keys: RedisKeys, scope: Scope): Promise<string[]> {
  if (!scope.all) return [scope.project];
  return [...new Set([DEFAULT_PROJECT, ...(await redis.smembers(keys.projects))])].sort();
}

/** Adds `b`'s counts into `a`. */
export function addUsage(a: UsageRow, b: UsageRow): UsageRow {
  for (const k of Object.keys(a) as (keyof UsageRow)[]) if (k !== 'key') (a[k] as number) += b[k] as number;
  return a;
}

/**
 * Every aggregate of one dimension in the scope's projects (summed across them for an admin), sorted by key;
 * `only` narrows to the given keys.
 */
export async function listUsage(redis: RedisClient, keys: RedisKeys, scope: Scope, dim: StoredUsageDimension, only?: (key: string) => boolean): Promise<UsageRow[]> {
  await foldUsage(redis, keys);
  const rows = new Map<string, UsageRow>();
  for (const project of await projectsOf(redis, keys, scope)) {
    const members = (await redis.zrange(keys.usageIndex(project, dim), 0, -1)).filter((m) => !only || only(m));
    const pipeline = redis.pipeline();
    for (const m of members) pipeline.hgetall(keys.usage(project, dim, m));
    const replies = (await pipeline.exec()) ?? [];
    members.forEach((m, i) => {
      const row = toUsageRow(m, (replies[i]?.[1] ?? {}) as Record<string, string>);
      const seen = rows.get(m);
      rows.set(m, seen ? addUsage(seen, row) : row);
    });
  }
  return [...rows.values()].sort((a, b) => a.key.localeCompare(b.key));
}
