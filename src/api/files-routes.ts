import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { z } from 'zod';
import { toOutputLine } from '../shared/batch-output.js';
import { FileWriter, getFile, newFileId, readFileContent, type StoredFile } from '../shared/file-store.js';
import { getBatch, readBatchRequests } from '../shared/read-store.js';
import type { ApiDeps } from './api-deps.js';
import { ApiError } from './api-errors.js';
import { parseGeneratedFileId } from './batch-object.js';
import { parseInput } from './zod-edge.js';

const fileObject = (f: StoredFile) => ({
  id: f.id,
  object: 'file' as const,
  bytes: f.bytes,
  created_at: Math.floor(f.createdAt / 1000),
  filename: f.filename,
  purpose: f.purpose,
  status: 'processed',
  status_details: null,
});

const idParams = z.object({ id: z.string().min(1).max(200) });
const MAX_REPORTED = 20;

/** OpenAI Files API, for batch input and output: upload (streamed, each line checked), metadata, content. */
export async function filesRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const { redis, keys } = deps;

  app.post('/v1/files', async (req, reply) => {
    if (!req.isMultipart()) throw new ApiError(400, 'Expected multipart/form-data with fields "file" and "purpose".', 'invalid_request');
    let purpose: string | undefined;
    let stored: StoredFile | undefined;
    for await (const part of req.parts()) {
      if (part.type === 'field') {
        if (part.fieldname === 'purpose') purpose = String(part.value);
        continue;
      }
      if (stored) throw new ApiError(400, 'Send one file per upload.', 'invalid_request', 'file');
      const writer = new FileWriter(redis, keys.prefix, newFileId());
      const problems: string[] = [];
      let n = 0;
      for await (const line of createInterface({ input: part.file, crlfDelay: Infinity })) {
        n += 1;
        if (line.trim() === '') continue;
        try {
          const parsed: unknown = JSON.parse(line);
          if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not a JSON object');
        } catch (err) {
          if (problems.length < MAX_REPORTED) problems.push(`line ${n}: ${(err as Error).message}`);
          continue;
        }
        await writer.push(line);
      }
      if (part.file.truncated) {
        await writer.discard();
        throw new ApiError(413, `File larger than the ${deps.maxUploadBytes} bytes allowed.`, 'file_too_large', 'file');
      }
      if (problems.length) {
        await writer.discard();
        throw new ApiError(400, `The file is not valid JSONL: ${problems.join('; ')}`, 'invalid_file', 'file');
      }
      stored = await writer.commit(part.filename || 'upload.jsonl', 'batch', deps.config.resultTtlS);
    }
    if (!stored) throw new ApiError(400, 'Missing the "file" field.', 'invalid_request', 'file');
    if (purpose !== 'batch') throw new ApiError(400, `purpose: expected "batch", got ${purpose === undefined ? 'nothing' : `"${purpose}"`}.`, 'invalid_request', 'purpose');
    return reply.code(200).send(fileObject(stored));
  });

  app.get('/v1/files/:id', async (req) => {
    const { id } = parseInput(idParams, req.params);
    const generated = parseGeneratedFileId(id);
    if (generated) {
      const batch = await getBatch(redis, keys, generated.batchId);
      if (!batch) throw new ApiError(404, `No file ${id}.`, 'not_found', 'id');
      return fileObject({ id, filename: `${generated.batchId}_${generated.errors ? 'error' : 'output'}.jsonl`, bytes: 0, lines: 0, createdAt: batch.completedAt ?? batch.createdAt, purpose: 'batch_output' });
    }
    const file = await getFile(redis, keys.prefix, id);
    if (!file) throw new ApiError(404, `No file ${id}.`, 'not_found', 'id');
    return fileObject(file);
  });

  app.get('/v1/files/:id/content', async (req, reply: FastifyReply) => {
    const { id } = parseInput(idParams, req.params);
    const generated = parseGeneratedFileId(id);
    void reply.header('content-type', 'application/jsonl');
    if (generated) {
      if (!(await getBatch(redis, keys, generated.batchId))) throw new ApiError(404, `No file ${id}.`, 'not_found', 'id');
      const lines = async function* () {
        for await (const r of readBatchRequests(redis, keys, generated.batchId)) {
          if ((r.status === 'succeeded') !== generated.errors) yield `${JSON.stringify(toOutputLine(r))}\n`;
        }
      };
      return reply.send(Readable.from(lines()));
    }
    if (!(await getFile(redis, keys.prefix, id))) throw new ApiError(404, `No file ${id}.`, 'not_found', 'id');
    return reply.send(readFileContent(redis, keys.prefix, id));
  });
}
