import type { RedisClient } from '../redis/redis.js';
import { DEFAULT_PROJECT, everyTag, type RedisKeys, type StoredUsageDimension } from '../keys.js';
import { batchPartId, parentOfPart } from '../shard-ids.js';
import type { Scope } from '../scope.js';
import { groupBy } from '../group-by.js';
import { decodeFinishedRecord, finishedConversation } from '../finished-record.js';
import { foldUsage } from '../usage/usage-fold.js';
import { combineParts, endedWithParts, partsOf, readParts, type BatchPart } from './sharded-batch.js';
import { REQUEST_FIELDS, toStoredRequest, type StoredRequest } from '../request-record.js';
import { toBatchRecord, type BatchRecord } from '../batch-record.js';

/** Reads of what workers wrote: batches, requests in input order, usage aggregates. Shared by the CLI and the API. */

/** A batch's record as its fields (a sharded batch's combined from its parts'). */
export async function readBatchFields(
  redis: RedisClient,
  keys: RedisKeys,
  id: string,
): Promise<Record<string, string>> {
  const own = await redis.hgetall(keys.batch(id));
  const parts = partsOf(keys, id, own);
  return parts.length && !endedWithParts(own) ? combineParts(own, await readParts(redis, parts)) : own;
}

export async function getBatch(redis: RedisClient, keys: RedisKeys, id: string): Promise<BatchRecord | null> {
  return toBatchRecord(id, await readBatchFields(redis, keys, id));
}

/**
 * Requests by id, each read from its shard (pipelines stay within one slot): a finished one's record
 * (finished-record.ts) in one command; only for the others (unfinished) their hash and body, in a second round trip.
 */
export async function getRequests(
  redis: RedisClient,
  keys: RedisKeys,
  ids: readonly string[],
): Promise<(StoredRequest | null)[]> {
  const byShard = groupBy(ids.keys(), (i) => keys.forId(ids[i]!));
  const found: (StoredRequest | null)[] = ids.map(() => null);
  await Promise.all(
    [...byShard].map(async ([k, indexes]) => {
      const records = (await indexes.reduce((p, i) => p.getBuffer(k.requestDone(ids[i]!)), redis.pipeline()).exec())!;
      const rest: number[] = [];
      indexes.forEach((i, n) => {
        const [err, record] = records[n]!;
        if (!err && record) found[i] = decodeFinishedRecord(ids[i]!, record as Buffer);
        else rest.push(i);
      });
      if (rest.length === 0) return;
      // The others' hash and body (unfinished), and their record again after the hash: one that finished since the
      // first read has its record by then (the hash and the record change places in one script).
      const pipeline = redis.pipeline();
      for (const i of rest)
        pipeline
          .hmget(k.request(ids[i]!), ...REQUEST_FIELDS)
          .get(k.requestBody(ids[i]!))
          .getBuffer(k.requestDone(ids[i]!));
      const rows = (await pipeline.exec())!;
      rest.forEach((i, n) => {
        const [[err, fields], [, body], [, record]] = rows.slice(n * 3, n * 3 + 3) as [
          [Error | null, unknown],
          [Error | null, unknown],
          [Error | null, unknown],
        ];
        if (err || !fields) return;
        if (record && (fields as (string | null)[]).every((v) => v === null)) {
          found[i] = decodeFinishedRecord(ids[i]!, record as Buffer);
          return;
        }
        found[i] = toStoredRequest(
          ids[i]!,
          Object.fromEntries(REQUEST_FIELDS.map((name, f) => [name, (fields as (string | null)[])[f]])),
          body as string | null,
          null,
        );
      });
    }),
  );
  return found;
}

/** The conversation a "full" history turn left for the next one (JSON text; null: none). */
export async function readConversation(redis: RedisClient, keys: RedisKeys, id: string): Promise<string | null> {
  const k = keys.forId(id);
  const done = await redis.getBuffer(k.requestDone(id));
  return done ? finishedConversation(id, done) : redis.hget(k.request(id), 'conv');
}

/** The ids of a batch's (or a part's) requests in input order, read in pages. */
async function* readIds(
  redis: RedisClient,
  keys: RedisKeys,
  batchId: string,
  pageSize: number,
): AsyncGenerator<string[]> {
  for (let start = 0; ; start += pageSize) {
    const ids = await redis.lrange(keys.batchRequests(batchId), start, start + pageSize - 1);
    if (ids.length) yield ids;
    if (ids.length < pageSize) return;
  }
}

/** Where a request is in its batch's input (its id ends with it). */
const seqOf = (id: string) => Number(id.slice(id.lastIndexOf('-') + 1));

/** A sharded batch's request ids in input order: its parts' lists (each in order) merged. */
async function* mergedIds(redis: RedisClient, parts: readonly BatchPart[], pageSize: number): AsyncGenerator<string[]> {
  const sources = parts.map((p) => ({
    pages: readIds(redis, p.keys, p.id, pageSize),
    page: [] as string[],
    at: 0,
    done: false,
  }));
  const fill = async (s: (typeof sources)[number]) => {
    if (s.at < s.page.length || s.done) return;
    const next = await s.pages.next();
    s.done = Boolean(next.done);
    s.page = next.done ? [] : next.value;
    s.at = 0;
  };
  await Promise.all(sources.map(fill));
  for (;;) {
    const out: string[] = [];
    while (out.length < pageSize) {
      let best: (typeof sources)[number] | undefined;
      for (const s of sources)
        if (s.at < s.page.length && (!best || seqOf(s.page[s.at]!) < seqOf(best.page[best.at]!))) best = s;
      if (!best) break;
      out.push(best.page[best.at]!);
      best.at += 1;
      await fill(best);
    }
    if (out.length) yield out;
    if (out.length < pageSize) return;
  }
}

/** A batch's request ids in input order, page by page (a sharded batch's merged from its parts'). */
async function batchIdPages(
  redis: RedisClient,
  keys: RedisKeys,
  batchId: string,
  pageSize: number,
): Promise<{ parts: BatchPart[]; pages: AsyncGenerator<string[]> }> {
  // Read whatever the shard count now: a batch of another count names its own parts.
  const parts = partsOf(keys, batchId, { shards: (await redis.hget(keys.batch(batchId), 'shards')) ?? '' });
  return { parts, pages: parts.length ? mergedIds(redis, parts, pageSize) : readIds(redis, keys, batchId, pageSize) };
}

/** A batch's requests in input order, read in pages (a sharded batch's from every part). */
export async function* readBatchRequests(
  redis: RedisClient,
  keys: RedisKeys,
  batchId: string,
  pageSize = 500,
): AsyncGenerator<StoredRequest> {
  for await (const ids of (await batchIdPages(redis, keys, batchId, pageSize)).pages)
    for (const r of await getRequests(redis, keys, ids)) if (r) yield r;
}

/** `size` request ids of a batch from position `start` in input order, and how many it has (a sharded batch's are merged: a later page reads past the earlier ones). */
export async function batchRequestIds(
  redis: RedisClient,
  keys: RedisKeys,
  batchId: string,
  start: number,
  size: number,
): Promise<{ count: number; ids: string[] }> {
  const { parts, pages } = await batchIdPages(redis, keys, batchId, size);
  if (parts.length === 0) {
    const [count, ids] = await Promise.all([
      redis.llen(keys.batchRequests(batchId)),
      redis.lrange(keys.batchRequests(batchId), start, start + size - 1),
    ]);
    return { count, ids };
  }
  const counts = await Promise.all(parts.map((p) => redis.llen(p.keys.batchRequests(p.id))));
  let skipped = 0;
  let ids: string[] = [];
  for await (const page of pages) {
    if (skipped + page.length > start) {
      ids = page.slice(start - skipped);
      break;
    }
    skipped += page.length;
  }
  return { count: counts.reduce((a, b) => a + b, 0), ids: ids.slice(0, size) };
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
  /** Calls the upstream answered again for a request counted already (a repeat after a takeover): in the tokens and
   * cost above, and counted here apart. */
  repeat_calls: number;
  repeat_cost_nano: number;
  /** Grading calls (expect.judge): in the tokens and cost above, and counted here apart from answering. */
  grading_calls: number;
  grading_cost_nano: number;
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
    repeat_calls: n('repeat_calls'),
    repeat_cost_nano: n('repeat_cost_nano'),
    grading_calls: n('grading_calls'),
    grading_cost_nano: n('grading_cost_nano'),
  };
}

/** One aggregate, with every pending record folded in first (a batch's tokens arrive through the fold). */
export async function getUsage(
  redis: RedisClient,
  keys: RedisKeys,
  project: string,
  dim: StoredUsageDimension,
  key: string,
): Promise<UsageRow> {
  return (await getUsages(redis, keys, [{ project, dim, key }]))[0]!;
}

/** An aggregate's key in one tag: a sharded batch's usage is kept by its parts, each in its shard. */
const keyInTag = (k: RedisKeys, dim: StoredUsageDimension, key: string) =>
  dim === 'batch' && k.shardCount > 1 && k.shardIndex >= 0 ? batchPartId(key, k.shardIndex, k.shardCount) : key;

/** Several aggregates after one fold, each summed over the tags that keep parts of it (one pipeline per tag). */
export async function getUsages(
  redis: RedisClient,
  keys: RedisKeys,
  wanted: readonly { project: string; dim: StoredUsageDimension; key: string }[],
): Promise<UsageRow[]> {
  await foldUsage(redis, keys);
  if (wanted.length === 0) return [];
  const perTag = await Promise.all(
    everyTag(keys).map(
      async (k) =>
        (await wanted
          .reduce((p, w) => p.hgetall(k.usage(w.project, w.dim, keyInTag(k, w.dim, w.key))), redis.pipeline())
          .exec()) ?? [],
    ),
  );
  return wanted.map((w, i) =>
    perTag.reduce(
      (row, replies) => addUsage(row, toUsageRow(w.key, (replies[i]?.[1] ?? {}) as Record<string, string>)),
      toUsageRow(w.key, {}),
    ),
  );
}

/** A counters hash kept per tag (the cluster metrics), summed over the base tag and every shard's. */
export async function sumOverTags(
  redis: RedisClient,
  keys: RedisKeys,
  key: (k: RedisKeys) => string,
): Promise<Record<string, string>> {
  const sums: Record<string, number> = {};
  for (const h of await Promise.all(everyTag(keys).map((k) => redis.hgetall(key(k))))) {
    for (const [field, value] of Object.entries(h)) sums[field] = (sums[field] ?? 0) + Number(value);
  }
  return Object.fromEntries(Object.entries(sums).map(([f, v]) => [f, String(v)]));
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
export async function listUsage(
  redis: RedisClient,
  keys: RedisKeys,
  scope: Scope,
  dim: StoredUsageDimension,
  only?: (key: string) => boolean,
): Promise<UsageRow[]> {
  await foldUsage(redis, keys);
  const rows = new Map<string, UsageRow>();
  const tagProjects = (await projectsOf(redis, keys, scope)).flatMap((project) =>
    everyTag(keys).map((k) => ({ k, project })),
  );
  for (const { k, project } of tagProjects) {
    // A batch part's usage counts as its batch's.
    const members = (await redis.zrange(k.usageIndex(project, dim), 0, -1)).filter(
      (m) => !only || only(dim === 'batch' ? parentOfPart(m) : m),
    );
    const pipeline = redis.pipeline();
    for (const m of members) pipeline.hgetall(k.usage(project, dim, m));
    const replies = (await pipeline.exec()) ?? [];
    members.forEach((m, i) => {
      const key = dim === 'batch' ? parentOfPart(m) : m;
      const row = toUsageRow(key, (replies[i]?.[1] ?? {}) as Record<string, string>);
      const seen = rows.get(key);
      rows.set(key, seen ? addUsage(seen, row) : row);
    });
  }
  return [...rows.values()].sort((a, b) => a.key.localeCompare(b.key));
}
