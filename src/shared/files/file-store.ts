import { Readable } from 'node:stream';
import type { RedisClient } from '../redis/redis.js';
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

/** Appends lines to a file being uploaded (in chunks, as they stream in). */
export class FileWriter {
  private buffer: string[] = [];
  bytes = 0;
  lines = 0;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
    readonly id: string,
  ) {}

  async push(line: string): Promise<void> {
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
    };
    await this.redis
      .multi()
      .hset(k.meta, { filename, bytes: file.bytes, lines: file.lines, created_at: file.createdAt, purpose, project })
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

/** A stored file's content as a stream of text, read from Redis page by page. */
export function readFileContent(redis: RedisClient, keys: RedisKeys, id: string, pageSize = 1_000): Readable {
  const key = fileKeys(keys, id).lines;
  return Readable.from(
    (async function* () {
      for (let start = 0; ; start += pageSize) {
        const lines = await redis.lrange(key, start, start + pageSize - 1);
        if (lines.length) yield `${lines.join('\n')}\n`;
        if (lines.length < pageSize) return;
      }
    })(),
  );
}
