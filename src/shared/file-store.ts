import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Redis } from 'ioredis';

/** Uploaded input files (OpenAI Files API, purpose "batch"), kept in Redis so every API and producer process sees them. */

export interface StoredFile {
  id: string;
  filename: string;
  bytes: number;
  lines: number;
  createdAt: number;
  purpose: string;
}

const LINES_PER_PUSH = 500;

export const fileKeys = (prefix: string, id: string) => ({ meta: `${prefix}:file:${id}`, lines: `${prefix}:file:${id}:lines` });
export const newFileId = () => `file-${randomUUID().replace(/-/g, '').slice(0, 24)}`;

/** Appends lines to a file being uploaded (in chunks, as they stream in). */
export class FileWriter {
  private buffer: string[] = [];
  bytes = 0;
  lines = 0;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
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
    await this.redis.rpush(fileKeys(this.prefix, this.id).lines, ...chunk);
  }

  async commit(filename: string, purpose: string, ttlS: number): Promise<StoredFile> {
    await this.flush();
    const k = fileKeys(this.prefix, this.id);
    const file: StoredFile = { id: this.id, filename, bytes: this.bytes, lines: this.lines, createdAt: Date.now(), purpose };
    await this.redis
      .multi()
      .hset(k.meta, { filename, bytes: file.bytes, lines: file.lines, created_at: file.createdAt, purpose })
      .expire(k.meta, ttlS)
      .expire(k.lines, ttlS)
      .exec();
    return file;
  }

  async discard(): Promise<void> {
    await this.redis.del(fileKeys(this.prefix, this.id).lines);
  }
}

/** Keeps a file for as long as something (a schedule) refers to it. */
export async function keepFile(redis: Redis, prefix: string, id: string): Promise<void> {
  const k = fileKeys(prefix, id);
  await redis.multi().persist(k.meta).persist(k.lines).exec();
}

export async function getFile(redis: Redis, prefix: string, id: string): Promise<StoredFile | null> {
  const h = await redis.hgetall(fileKeys(prefix, id).meta);
  if (!h.filename) return null;
  return { id, filename: h.filename, bytes: Number(h.bytes), lines: Number(h.lines), createdAt: Number(h.created_at), purpose: h.purpose ?? 'batch' };
}

/** A stored file's content as a stream of text, read from Redis page by page. */
export function readFileContent(redis: Redis, prefix: string, id: string, pageSize = 1_000): Readable {
  const key = fileKeys(prefix, id).lines;
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
