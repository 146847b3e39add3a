import { Readable } from 'node:stream';
import type { RedisClient } from '../redis/redis.js';
import type { RecordKind } from '../input-limits.js';
import { DEFAULT_PROJECT, type RedisKeys } from '../keys.js';

/** Uploaded input files (OpenAI Files API, purpose "batch"), kept in Redis so every API and producer process sees them. */

export interface StoredFile {
  id: string;
  project: string;
  filename: string;
  bytes: number;
  lines: number;
  createdAt: number;
  /** "batch" (uploaded: its uploader's until deleted or expired), or "schedule" (a suite made by `chatq schedule add`). */
  purpose: string;
  /** Its records: the lines of a JSONL file, or the items of a JSON array (a memory benchmark), kept as such. */
  kind: RecordKind;
}

const LINES_PER_PUSH = 500;
/** An upload still being received (or one whose server died mid-way) is kept this long at the most. */
const STAGING_TTL_S = 3600;

export const fileKeys = (keys: RedisKeys, id: string) => ({ meta: keys.file(id), lines: keys.fileLines(id) });

/** A MULTI's first failed command, thrown (ioredis answers them as [error, result] pairs). */
const throwFirstError = (replies: [Error | null, unknown][] | null) => {
  const failed = replies?.find(([err]) => err);
  if (failed) throw failed[0];
};

/** Appends records to a file being uploaded (in chunks, as they stream in): lines, or a JSON array's items. */
export class FileWriter {
  private buffer: string[] = [];
  bytes = 0;
  lines = 0;
  private kind: RecordKind = 'line';

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
    readonly id: string,
  ) {}

  /** A record's text (one line: an item is kept compact) and what it is (every record of a file is of one kind). */
  async push(line: string, kind: RecordKind): Promise<void> {
    this.kind = kind;
    this.buffer.push(line);
    this.bytes += Buffer.byteLength(line) + 1;
    this.lines += 1;
    if (this.buffer.length >= LINES_PER_PUSH) await this.flush();
  }

  private async flush(): Promise<void> {
    if (this.buffer.length === 0) return;
    const chunk = this.buffer;
    this.buffer = [];
    const { lines } = fileKeys(this.keys, this.id);
    await this.redis
      .multi()
      .rpush(lines, ...chunk)
      .expire(lines, STAGING_TTL_S)
      .exec()
      .then(throwFirstError);
  }

  async commit(filename: string, purpose: string, project: string, ttlS: number): Promise<StoredFile> {
    await this.flush();
    const k = fileKeys(this.keys, this.id);
    const file: StoredFile = {
      id: this.id,
      project,
      filename,
      bytes: this.bytes,
      lines: this.lines,
      createdAt: Date.now(),
      purpose,
      kind: this.kind,
    };
    const meta = { filename, bytes: file.bytes, lines: file.lines, created_at: file.createdAt, purpose, project };
    await this.redis
      .multi()
      .hset(k.meta, { ...meta, kind: this.kind })
      .expire(k.meta, ttlS)
      .expire(k.lines, ttlS)
      .zadd(this.keys.files, file.createdAt, this.id)
      .zadd(this.keys.projectFiles(project), file.createdAt, this.id)
      .exec();
    return file;
  }

  /** Removes whatever was stored of this file (an upload that failed or was refused). */
  async discard(): Promise<void> {
    this.buffer = [];
    await this.redis.unlink(...Object.values(fileKeys(this.keys, this.id)));
  }
}

/** Keeps a file for as long as something (a schedule) refers to it. */
export async function keepFile(redis: RedisClient, keys: RedisKeys, id: string): Promise<void> {
  const k = fileKeys(keys, id);
  await redis.multi().persist(k.meta).persist(k.lines).exec();
}

/** Gives a file kept for a schedule its expiry back (counted from now). */
export async function releaseFile(redis: RedisClient, keys: RedisKeys, id: string, ttlS: number): Promise<void> {
  const k = fileKeys(keys, id);
  await redis.multi().expire(k.meta, ttlS).expire(k.lines, ttlS).exec();
}

export async function getFile(redis: RedisClient, keys: RedisKeys, id: string): Promise<StoredFile | null> {
  const h = await redis.hgetall(fileKeys(keys, id).meta);
  if (!h.filename) return null;
  return {
    id,
    project: h.project || DEFAULT_PROJECT,
    filename: h.filename,
    bytes: Number(h.bytes),
    lines: Number(h.lines),
    createdAt: Number(h.created_at),
    purpose: h.purpose ?? 'batch',
    kind: h.kind === 'item' ? 'item' : 'line',
  };
}

export async function deleteFile(redis: RedisClient, keys: RedisKeys, id: string): Promise<void> {
  const project = (await redis.hget(keys.file(id), 'project')) || DEFAULT_PROJECT;
  await redis
    .multi()
    .unlink(...Object.values(fileKeys(keys, id)))
    .zrem(keys.files, id)
    .zrem(keys.projectFiles(project), id)
    .exec();
}

/** The most records a page of readFileContent holds, and about the most bytes (a page holds one record at least). */
const PAGE_RECORDS = 1_000;
const PAGE_BYTES = 4 * 1024 * 1024;

/**
 * A stored file's content as a stream of text, as it was uploaded: JSONL lines, or a JSON array of its items (so
 * that it is read again with an item's bounds, not a line's). Read from Redis page by page, each page about
 * PAGE_BYTES (as many records as the file's average holds there), not a fixed count of records of any size.
 */
export function readFileContent(redis: RedisClient, keys: RedisKeys, id: string): Readable {
  const k = fileKeys(keys, id);
  return Readable.from(
    (async function* () {
      const [bytes, lines, kind] = await redis.hmget(k.meta, 'bytes', 'lines', 'kind');
      const average = Number(bytes) / Math.max(1, Number(lines)) || 1;
      const pageSize = Math.max(1, Math.min(PAGE_RECORDS, Math.floor(PAGE_BYTES / average)));
      const items = kind === 'item';
      if (items) yield '[';
      for (let start = 0; ; start += pageSize) {
        const page = await redis.lrange(k.lines, start, start + pageSize - 1);
        if (page.length) yield items ? `${start ? ',' : ''}${page.join(',\n')}\n` : `${page.join('\n')}\n`;
        if (page.length < pageSize) break;
      }
      if (items) yield ']\n';
    })(),
  );
}
