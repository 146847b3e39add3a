import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { batchFileLines } from '../shared/batches/batch-output.js';
import { readInputRecords } from '../shared/input-records.js';
import { deleteFile, FileWriter, readFileContent, type StoredFile } from '../shared/files/file-store.js';
import { fileUsers } from '../shared/files/file-users.js';
import { newFileId } from '../shared/ids.js';
import { parseJsonLine, type RecordKind } from '../shared/input-limits.js';
import { describeRedisError } from '../shared/redis/redis-errors.js';
import type { Scope } from '../shared/scope.js';
import type { ApiDeps } from '../http/api-deps.js';
import { loadVisibleFile } from '../http/visible-records.js';
import { ApiError } from '../http/api-errors.js';
import { creatorProject } from '../http/auth.js';
import { parseGeneratedFileId } from './batch-object.js';
import { listFiles, UnknownCursor } from './file-list.js';
import { listPage } from './list-page.js';
import { loadVisibleBatch } from '../http/visible-records.js';
import { idParams, typed } from '../http/zod-edge.js';

const fileObject = (f: Omit<StoredFile, 'project' | 'lines' | 'kind'>) => ({
  id: f.id,
  object: 'file' as const,
  bytes: f.bytes,
  created_at: Math.floor(f.createdAt / 1000),
  filename: f.filename,
  purpose: f.purpose,
  status: 'processed',
  status_details: null,
});

/** GET /v1/files's query, as OpenAI has it. */
const listQuery = z.object({
  purpose: z.string().max(64).optional(),
  limit: z.coerce.number().int().min(1).max(10_000).default(10_000),
  after: z.string().max(200).optional(),
  order: z.enum(['asc', 'desc']).default('desc'),
});
const MAX_REPORTED = 20;
/** What a multipart body carries besides its file (boundaries, part headers, the purpose field), at the most. */
const MULTIPART_OVERHEAD = 64 * 1024;
/**
 * A refused body still arriving is read and dropped up to this size, so that the client, still sending, reads the
 * answer; a larger one is cut off with the answer.
 */
const DRAIN_MOST_BYTES = 64 * 1024 * 1024;
/** Uploads one server receives at once hold at most this many times the upload limit in Redis. */
const STAGED_UPLOADS = 2;

/**
 * The bytes the uploads this server is receiving have staged in Redis, at most STAGED_UPLOADS times the upload limit
 * together: each takes what arrives, as it arrives (an upload with no length, or one that says a large one, holds
 * nothing it has not sent), and gives it all back when it ends.
 */
class UploadStaging {
  private used = 0;
  constructor(private readonly limit: number) {}

  /** Takes `bytes` for an upload; false (nothing taken) when that would pass the limit. */
  take(bytes: number): boolean {
    if (this.used + bytes > this.limit) return false;
    this.used += bytes;
    return true;
  }

  give(bytes: number): void {
    this.used -= bytes;
  }
}

/**
 * Stores one uploaded part record by record (a JSON array, a memory benchmark: item by item, each as one line), each
 * checked against its kind's bounds and staged first; a part with bad records (or too big) is refused whole.
 */
async function storePart(
  deps: ApiDeps,
  writer: FileWriter,
  input: NodeJS.ReadableStream & { truncated?: boolean },
  stage: (bytes: number) => void,
): Promise<void> {
  const problems: string[] = [];
  let kind: RecordKind = 'line';
  for await (const l of readInputRecords(input as Readable)) {
    kind = l.kind;
    if ('text' in l && l.text.trim() === '') continue;
    const json = 'text' in l ? parseJsonLine(l.text, l.kind) : undefined;
    const why = 'refused' in l ? l.refused : json && !json.ok ? json.message : undefined;
    if (why !== undefined) {
      if (problems.length < MAX_REPORTED) problems.push(`${l.kind} ${l.line}: ${why}`);
      continue;
    }
    if (problems.length > 0 || !('text' in l)) continue;
    stage(Buffer.byteLength(l.text) + 1);
    await writer.push(l.text, l.kind);
  }
  if (input.truncated)
    throw new ApiError(413, `File larger than the ${deps.maxUploadBytes} bytes allowed.`, 'file_too_large', 'file');
  if (problems.length)
    throw new ApiError(
      400,
      `The file is not ${kind === 'item' ? 'a valid JSON array of objects' : 'valid JSONL'}: ${problems.join('; ')}`,
      'invalid_file',
      'file',
    );
}

/**
 * The rest of a refused body: read and dropped (up to DRAIN_MOST_BYTES, then the connection is cut), rather than the
 * connection closed with the answer while the client is still sending: Node 24's fetch then fails with a broken pipe
 * (EPIPE) instead of reading the 413 that says what to do.
 */
function dropRestOfBody(req: FastifyRequest, reply: FastifyReply, declared: number): void {
  const raw = req.raw;
  if (raw.complete) return;
  if (declared > DRAIN_MOST_BYTES) {
    void reply.header('connection', 'close');
    return;
  }
  let dropped = 0;
  raw.on('data', (chunk: Buffer) => {
    dropped += chunk.length;
    if (dropped > DRAIN_MOST_BYTES) raw.destroy();
  });
  raw.resume();
}

/** An upload that sent nothing for its idle time: ended, with a 408. */
class UploadIdle extends Error {
  constructor(readonly idleMs: number) {
    super('upload idle');
  }

  answer(): ApiError {
    return new ApiError(
      408,
      `The upload sent nothing for ${this.idleMs} ms and was ended; nothing of it was kept. Send the file again.`,
      'upload_timeout',
      'file',
    );
  }
}

/**
 * Watches an upload's body: when nothing arrives for `idleMs`, the file part being read ends with UploadIdle, and
 * `expired` rejects with it (for a body that went quiet before its file part).
 */
function watchIdle(req: FastifyRequest, idleMs: number) {
  let file: Readable | undefined;
  let timer: NodeJS.Timeout | undefined;
  let expire: (err: UploadIdle) => void = () => undefined;
  const expired = new Promise<never>((_, reject) => (expire = reject));
  expired.catch(() => undefined);
  const fire = () => {
    const err = new UploadIdle(idleMs);
    file?.destroy(err);
    expire(err);
  };
  const arrived = () => timer?.refresh();
  timer = setTimeout(fire, idleMs);
  req.raw.on('data', arrived);
  return {
    expired,
    reading: (f: Readable) => {
      file = f;
    },
    stop: () => {
      clearTimeout(timer);
      req.raw.off('data', arrived);
    },
  };
}

/** A 503 that asks the client to come back in 30 s. */
function busy(reply: FastifyReply, message: string, code: string): ApiError {
  void reply.header('retry-after', '30');
  return new ApiError(503, message, code);
}

/** What one upload is received with: where it stages its bytes, and its idle watch. */
interface UploadContext {
  stage: (bytes: number) => void;
  /** The file part being read, for the idle watch to end. */
  reading: (file: Readable) => void;
}

/** Reads a multipart upload: its purpose and one file, stored line by line; a refused upload keeps nothing. */
async function receiveUpload(deps: ApiDeps, req: FastifyRequest, reply: FastifyReply, upload: UploadContext) {
  const { redis, keys } = deps;
  let purpose: string | undefined;
  let writer: FileWriter | undefined;
  let filename = 'upload.jsonl';
  try {
    for await (const part of req.parts()) {
      if (part.type === 'field') {
        if (part.fieldname === 'purpose') purpose = String(part.value);
        continue;
      }
      if (writer) throw new ApiError(400, 'Send one file per upload.', 'invalid_request', 'file');
      writer = new FileWriter(redis, keys, newFileId());
      filename = part.filename || filename;
      upload.reading(part.file);
      await storePart(deps, writer, part.file, upload.stage);
    }
    if (!writer) throw new ApiError(400, 'Missing the "file" field.', 'invalid_request', 'file');
    if (purpose !== 'batch')
      throw new ApiError(
        400,
        `purpose: expected "batch", got ${purpose === undefined ? 'nothing' : `"${purpose}"`}.`,
        'invalid_request',
        'purpose',
      );
    return reply
      .code(200)
      .send(fileObject(await writer.commit(filename, 'batch', creatorProject(req.principal), deps.config.resultTtlS)));
  } catch (err) {
    // A refused upload keeps nothing, and what is left of its body is dropped as it arrives (an idle one's
    // connection ends with the answer: nothing is arriving).
    if (err instanceof UploadIdle) void reply.header('connection', 'close');
    else dropRestOfBody(req, reply, Number(req.headers['content-length']) || 0);
    await writer?.discard().catch(() => undefined);
    if (err instanceof ApiError) throw err;
    if (err instanceof UploadIdle) throw err.answer();
    if (describeRedisError(err)?.code === 'redis_oom')
      throw busy(
        reply,
        'The server has no room for this file right now; try again later, or upload a smaller file.',
        'server_full',
      );
    const code = (err as { code?: string }).code;
    if (code === 'FST_FILES_LIMIT') throw new ApiError(400, 'Send one file per upload.', 'invalid_request', 'file');
    if ((err as { statusCode?: number }).statusCode === 413) throw err;
    throw new ApiError(400, `Malformed multipart body: ${(err as Error).message}`, 'invalid_request');
  }
}

/** OpenAI Files API, for batch input and output: upload (streamed, each line checked), metadata, content, delete. */
export async function filesRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const { redis, keys } = deps;
  const notFound = (id: string) => new ApiError(404, `No file ${id}.`, 'not_found', 'id');

  /** An uploaded file the scope may see. */
  const visibleFile = (scope: Scope, id: string) => loadVisibleFile(deps, scope, id, () => notFound(id));

  const staging = new UploadStaging(STAGED_UPLOADS * deps.maxUploadBytes);
  const api = typed(app);

  app.post('/v1/files', async (req, reply) => {
    if (!req.isMultipart())
      throw new ApiError(400, 'Expected multipart/form-data with fields "file" and "purpose".', 'invalid_request');
    // The limit applies before the body is read: a body that says it is larger is refused at once.
    const declared = Number(req.headers['content-length']);
    if (declared > deps.maxUploadBytes + MULTIPART_OVERHEAD) {
      dropRestOfBody(req, reply, declared);
      throw new ApiError(413, `File larger than the ${deps.maxUploadBytes} bytes allowed.`, 'file_too_large', 'file');
    }
    let staged = 0;
    const idle = watchIdle(req, deps.config.uploadIdleMs);
    const received = receiveUpload(deps, req, reply, {
      stage: (bytes) => {
        if (!staging.take(bytes))
          throw busy(reply, 'Too many uploads are being received right now; try again shortly.', 'too_many_uploads');
        staged += bytes;
      },
      reading: idle.reading,
    }).finally(() => {
      idle.stop();
      staging.give(staged);
    });
    try {
      return await Promise.race([received, idle.expired]);
    } catch (err) {
      // An upload that went quiet before its file part began: the answer now; its reading ends with the connection.
      if (!(err instanceof UploadIdle)) throw err;
      received.catch(() => undefined);
      void reply.header('connection', 'close');
      reply.raw.once('finish', () => req.raw.destroy());
      throw err.answer();
    }
  });

  api.get('/v1/files', { schema: { querystring: listQuery } }, async (req) => {
    const q = req.query;
    try {
      const { data, hasMore } = await listFiles(redis, keys, req.principal.scope, q);
      return listPage(data.map(fileObject), hasMore);
    } catch (err) {
      if (err instanceof UnknownCursor) throw new ApiError(400, err.message, 'invalid_request', 'after');
      throw err;
    }
  });

  api.get('/v1/files/:id', { schema: { params: idParams } }, async (req) => {
    const { id } = req.params;
    const generated = parseGeneratedFileId(id);
    if (generated) {
      const batch = await loadVisibleBatch(deps, req.principal.scope, generated.batchId, () => notFound(id));
      return fileObject({
        id,
        filename: `${generated.batchId}_${generated.errors ? 'error' : 'output'}.jsonl`,
        bytes: 0,
        createdAt: batch.completedAt ?? batch.createdAt,
        purpose: 'batch_output',
      });
    }
    return fileObject(await visibleFile(req.principal.scope, id));
  });

  api.get('/v1/files/:id/content', { schema: { params: idParams } }, async (req, reply) => {
    const { id } = req.params;
    const generated = parseGeneratedFileId(id);
    if (generated) {
      await loadVisibleBatch(deps, req.principal.scope, generated.batchId, () => notFound(id));
      return reply
        .header('content-type', 'application/jsonl')
        .send(Readable.from(batchFileLines(redis, keys, generated.batchId, generated.errors)));
    }
    const file = await visibleFile(req.principal.scope, id);
    return reply
      .header('content-type', file.kind === 'item' ? 'application/json' : 'application/jsonl')
      .send(readFileContent(redis, keys, id));
  });

  api.delete('/v1/files/:id', { schema: { params: idParams } }, async (req) => {
    const { id } = req.params;
    if (parseGeneratedFileId(id))
      throw new ApiError(
        400,
        'Output and error files go with their batch; they cannot be deleted alone.',
        'invalid_request',
        'id',
      );
    await visibleFile(req.principal.scope, id);
    const users = await fileUsers(redis, keys, id);
    if (users.length)
      throw new ApiError(409, `File ${id} is in use by ${users.join(', ')}; remove those first.`, 'file_in_use', 'id');
    await deleteFile(redis, keys, id);
    return { id, object: 'file', deleted: true };
  });
}
