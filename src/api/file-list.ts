import { getBatch } from '../shared/batches/read-store.js';
import { getFile, type StoredFile } from '../shared/files/file-store.js';
import type { RedisKeys } from '../shared/keys.js';
import type { RedisClient } from '../shared/redis/redis.js';
import type { Scope } from '../shared/scope.js';
import { generatedFileIds, parseGeneratedFileId } from './batch-object.js';

/** A file as GET /v1/files lists it: its fields, and where it sorts (its upload's time, or its batch's creation). */
export type ListedFile = Omit<StoredFile, 'project' | 'lines' | 'kind'> & { sortAt: number };

export interface FileQuery {
  purpose?: string | undefined;
  limit: number;
  after?: string | undefined;
  order: 'asc' | 'desc';
}

/** Index entries read per round trip. */
const PAGE = 200;

type Order = FileQuery['order'];
/** Files sort by time, then id, newest first ("desc") or oldest first. */
const compare = (order: Order) => (a: { sortAt: number; id: string }, b: { sortAt: number; id: string }) => {
  const d = a.sortAt - b.sortAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  return order === 'desc' ? -d : d;
};

/**
 * An index's members from `from` (a score, inclusive) on, in order, with their records: a page of entries per round
 * trip, and the page's records read together. Members whose record is gone are skipped; with `prune`, also taken out
 * of the index (an expired upload), the next page's offset counting them.
 */
async function* indexFrom<T>(
  redis: RedisClient,
  index: string,
  q: { order: Order; from: number | undefined; prune: boolean },
  load: (id: string) => Promise<T | null>,
): AsyncGenerator<[T, number]> {
  for (let offset = 0; ; ) {
    const flat =
      q.order === 'desc'
        ? await redis.zrevrangebyscore(index, q.from ?? '+inf', '-inf', 'WITHSCORES', 'LIMIT', offset, PAGE)
        : await redis.zrangebyscore(index, q.from ?? '-inf', '+inf', 'WITHSCORES', 'LIMIT', offset, PAGE);
    const ids = flat.filter((_, i) => i % 2 === 0);
    const records = await Promise.all(ids.map(load));
    const gone = ids.filter((_, i) => records[i] === null);
    if (q.prune && gone.length) await redis.zrem(index, ...gone);
    for (let i = 0; i < ids.length; i++) if (records[i] !== null) yield [records[i]!, Number(flat[2 * i + 1])];
    if (ids.length < PAGE) return;
    offset += PAGE - (q.prune ? gone.length : 0);
  }
}

/** Uploaded files, in order; index entries of files that expired are dropped on the way. */
async function* uploads(redis: RedisClient, keys: RedisKeys, index: string, order: Order, from?: number) {
  const q = { order, from, prune: true };
  for await (const [file, at] of indexFrom(redis, index, q, (id) => getFile(redis, keys, id)))
    yield { ...file, sortAt: at } satisfies ListedFile;
}

/** The output and error files of ended batches, in their batches' order. */
async function* generated(redis: RedisClient, keys: RedisKeys, index: string, order: Order, from?: number) {
  const q = { order, from, prune: false };
  for await (const [b, at] of indexFrom(redis, index, q, (id) => getBatch(redis, keys, id))) {
    const ids = generatedFileIds(b);
    const files = [
      ...(ids.output ? [{ id: ids.output, kind: 'output' }] : []),
      ...(ids.error ? [{ id: ids.error, kind: 'error' }] : []),
    ].map(({ id, kind }) => ({
      id,
      filename: `${b.id}_${kind}.jsonl`,
      bytes: 0,
      createdAt: b.completedAt ?? b.createdAt,
      purpose: 'batch_output',
      sortAt: at,
    }));
    yield* files.sort(compare(order));
  }
}

/** Two ordered streams as one. */
async function* merged(order: Order, a: AsyncGenerator<ListedFile>, b: AsyncGenerator<ListedFile>) {
  let [x, y] = await Promise.all([a.next(), b.next()]);
  while (!x.done || !y.done) {
    if (y.done || (!x.done && compare(order)(x.value, y.value) <= 0)) {
      yield x.value as ListedFile;
      x = await a.next();
    } else {
      yield y.value;
      y = await b.next();
    }
  }
}

/** Where a cursor (a listed file's id) sorts, or null when no such file is listed. */
async function cursorOf(redis: RedisClient, keys: RedisKeys, scope: Scope, id: string) {
  const generatedFrom = parseGeneratedFileId(id);
  const score = generatedFrom
    ? await redis.zscore(scope.all ? keys.batches : keys.projectBatches(scope.project), generatedFrom.batchId)
    : await redis.zscore(scope.all ? keys.files : keys.projectFiles(scope.project), id);
  return score === null ? null : { id, sortAt: Number(score) };
}

export class UnknownCursor extends Error {}

/**
 * A page of the files the scope may see: uploaded ones and ended batches' output and error files, by time (uploads
 * by when they were uploaded, generated ones by when their batch was made), then id; after a cursor when given.
 */
export async function listFiles(
  redis: RedisClient,
  keys: RedisKeys,
  scope: Scope,
  q: FileQuery,
): Promise<{ data: ListedFile[]; hasMore: boolean }> {
  const cursor = q.after ? await cursorOf(redis, keys, scope, q.after) : undefined;
  if (cursor === null) throw new UnknownCursor(`after: no file ${q.after}.`);
  const from = cursor?.sortAt;
  const sources = [
    uploads(redis, keys, scope.all ? keys.files : keys.projectFiles(scope.project), q.order, from),
    generated(redis, keys, scope.all ? keys.batches : keys.projectBatches(scope.project), q.order, from),
  ] as const;
  const data: ListedFile[] = [];
  for await (const f of merged(q.order, ...sources)) {
    if (cursor && compare(q.order)(f, cursor) <= 0) continue;
    if (q.purpose !== undefined && f.purpose !== q.purpose) continue;
    if (data.length === q.limit) return { data, hasMore: true };
    data.push(f);
  }
  return { data, hasMore: false };
}
