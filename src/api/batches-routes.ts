import { type GradingOptions, gradingMetadataSchema, gradingOptionsOf } from '../shared/batches/grading-metadata.js';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { createBatchRecord, queueImport } from '../shared/batches/batch-imports.js';
import { cancelBatch } from '../shared/batches/cancel-batch.js';
import { API_COMPLETION_WINDOW, parseCompletionWindow, type CompletionWindow } from '../shared/completion-window.js';
import type { StoredFile } from '../shared/files/file-store.js';
import { isBatchId, newBatchId } from '../shared/ids.js';
import { getBatch } from '../shared/batches/read-store.js';
import type { FinishedStatus } from '../shared/request-record.js';
import { batchEnded } from '../shared/batch-record.js';
import { RETRYABLE_STATUSES } from '../shared/batches/retry-input.js';
import { loadPrices, type PriceTable } from '../shared/usage/pricing.js';
import type { ApiDeps } from '../http/api-deps.js';
import { ApiError } from '../http/api-errors.js';
import { batchObject, batchObjects } from './batch-object.js';
import { loadVisibleBatch, loadVisibleFile } from '../http/visible-records.js';
import { estimateStoredFile } from '../http/file-estimate.js';
import { idParams, parseInput, typed } from '../http/zod-edge.js';
import { listPage } from './list-page.js';

const createBody = z.strictObject({
  input_file_id: z.string().min(1).max(200),
  endpoint: z.literal('/v1/chat/completions', { message: 'only /v1/chat/completions is supported' }),
  completion_window: z.string().max(20).default(API_COMPLETION_WINDOW),
  // OpenAI's bounds: 16 pairs, keys of 64 characters, values of 512.
  metadata: z
    .record(
      z.string().max(64, { message: 'metadata keys are at most 64 characters' }),
      z.string().max(512, { message: 'metadata values are at most 512 characters' }),
    )
    .refine((m) => Object.keys(m).length <= 16, { message: 'metadata holds at most 16 key-value pairs' })
    .nullish(),
  /** chatq: no call is sent that could take the batch past this cost (also accepted as metadata.max_cost_usd). */
  max_cost_usd: z.number().positive().optional(),
});

const listQuery = z.object({
  limit: z.coerce.number().int().min(1).max(100).default(20),
  after: z.string().max(200).optional(),
});

const retryBody = z.strictObject({
  /** Final statuses to send again (default: every one but succeeded). */
  status: z
    .array(
      z.enum(RETRYABLE_STATUSES as [FinishedStatus, ...FinishedStatus[]], {
        message: `expected some of ${RETRYABLE_STATUSES.join(', ')}`,
      }),
    )
    .min(1)
    .optional(),
  /** Only failures with this error code. */
  code: z.string().min(1).max(200).optional(),
  /** The new batch's window (default: 24h, like any batch made over the API). */
  completion_window: z.string().max(20).default(API_COMPLETION_WINDOW),
});

function windowOf(text: string): CompletionWindow {
  const window = parseCompletionWindow(text);
  if ('error' in window)
    throw new ApiError(400, `completion_window: ${window.error}.`, 'invalid_request', 'completion_window');
  return window;
}

/**
 * POST /v1/batches with metadata.dry_run "true": what the file will send, cost and take, as `chatq estimate` says it
 * (the configured limits, the concurrency of the workers running now, the latency of the calls on record); no batch.
 */
async function estimateFile(
  deps: ApiDeps,
  prices: PriceTable,
  principal: FastifyRequest['principal'],
  file: StoredFile,
  grading: GradingOptions,
) {
  const { config } = deps;
  const { estimate: e, badLines, settings } = await estimateStoredFile(deps, prices, principal.scope, file, grading);
  return {
    object: 'batch.estimate',
    input_file_id: file.id,
    requests: e.requests,
    users: e.users,
    bad_lines: badLines,
    longest_chain: { requests: e.longestChain.requests, gap_ms: e.longestChain.gapMs },
    prompt_tokens: e.promptTokens,
    completion_tokens: { expected: e.completionTokens.expected, at_most: e.completionTokens.atMost },
    cost_usd: { low: e.costNano.low / 1e9, expected: e.costNano.expected / 1e9, high: e.costNano.high / 1e9 },
    unpriced_requests: e.unpriced,
    duration_ms: Math.round(e.durationMs),
    binds: e.binds,
    bounds_ms: Object.fromEntries(Object.entries(e.boundsMs).map(([k, ms]) => [k, Math.round(ms)])),
    assumed: {
      latency_ms: Math.round(settings.latencyMs),
      concurrency: settings.concurrency,
      rpm: config.rpm,
      tpm: config.tpm,
    },
  };
}

/** POST /v1/batches: a batch of an uploaded file, within the token's project; the producer side imports it. */
async function createFromFile(
  deps: ApiDeps,
  prices: PriceTable,
  principal: FastifyRequest['principal'],
  body: z.output<typeof createBody>,
) {
  const { redis, keys } = deps;
  const window = windowOf(body.completion_window);
  const file = await loadVisibleFile(
    deps,
    principal.scope,
    body.input_file_id,
    () => new ApiError(404, `No file ${body.input_file_id}.`, 'not_found', 'input_file_id'),
  );
  const metadata = body.metadata ?? {};
  parseInput(gradingMetadataSchema, metadata);
  if (metadata.dry_run === 'true') return estimateFile(deps, prices, principal, file, gradingOptionsOf(metadata));
  const budgetUsd =
    body.max_cost_usd ?? (metadata.max_cost_usd !== undefined ? Number(metadata.max_cost_usd) : undefined);
  if (budgetUsd !== undefined && !(budgetUsd > 0))
    throw new ApiError(400, 'max_cost_usd: expected a positive number of USD.', 'invalid_request', 'max_cost_usd');
  const batchId = newBatchId();
  const maxCostNano = budgetUsd === undefined ? undefined : Math.round(budgetUsd * 1e9);
  await createBatchRecord(redis, keys, {
    batchId,
    project: file.project,
    name: metadata.name ?? file.filename,
    input: file.filename,
    metadata,
    inputFileId: file.id,
    completionWindow: window,
    ...(maxCostNano !== undefined ? { maxCostNano } : {}),
  });
  await queueImport(redis, keys, deps.imports, { batchId, fileId: file.id, project: file.project });
  return batchObject(redis, keys, (await getBatch(redis, keys, batchId))!);
}

/** OpenAI Batch API: create (imported by the producer side), retrieve, list (cursor pages), cancel, and chatq's retry; each within the token's project. */
export async function batchesRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const { redis, keys } = deps;
  const noBatch = (id: string) => () => new ApiError(404, `No batch ${id}.`, 'not_found', 'id');

  // The price map of dry runs' estimates: read once, as the worker reads it.
  const prices = loadPrices(deps.config.pricesFile);
  const api = typed(app);
  api.post('/v1/batches', { schema: { body: createBody } }, async (req) =>
    createFromFile(deps, prices, req.principal, req.body),
  );

  api.get('/v1/batches/:id', { schema: { params: idParams } }, async (req) => {
    const { id } = req.params;
    return batchObject(redis, keys, await loadVisibleBatch(deps, req.principal.scope, id, noBatch(id)));
  });

  api.get('/v1/batches', { schema: { querystring: listQuery } }, async (req) => {
    const { limit, after } = req.query;
    const { scope } = req.principal;
    const index = scope.all ? keys.batches : keys.projectBatches(scope.project);
    let from = 0;
    if (after) {
      const rank = isBatchId(after) ? await redis.zrevrank(index, after) : null;
      if (rank === null) throw new ApiError(400, `after: no batch ${after}.`, 'invalid_request', 'after');
      from = rank + 1;
    }
    const ids = await redis.zrevrange(index, from, from + limit);
    const page = (await Promise.all(ids.slice(0, limit).map((id) => getBatch(redis, keys, id)))).filter(
      (b) => b !== null,
    );
    const data = await batchObjects(redis, keys, page);
    return listPage(data, ids.length > limit);
  });

  // What a batch did not get done, as a new batch: same custom_ids, bodies and users, metadata.retry_of set.
  api.post('/v1/batches/:id/retry', { schema: { params: idParams, body: retryBody } }, async (req) => {
    const { id } = req.params;
    const original = await loadVisibleBatch(deps, req.principal.scope, id, noBatch(id));
    const sel = req.body;
    const window = windowOf(sel.completion_window);
    if (!batchEnded(original.status))
      throw new ApiError(
        409,
        `Batch ${id} is ${original.status}: retry it once it has ended.`,
        'batch_not_ended',
        'id',
      );
    const batchId = newBatchId();
    await createBatchRecord(redis, keys, {
      batchId,
      project: original.project,
      name: `${original.name} (retry)`,
      input: `retry of ${id}`,
      metadata: { ...original.metadata, retry_of: id },
      completionWindow: window,
    });
    await queueImport(redis, keys, deps.imports, {
      batchId,
      project: original.project,
      retry: { batchId: id, statuses: sel.status ?? RETRYABLE_STATUSES, ...(sel.code ? { code: sel.code } : {}) },
    });
    return batchObject(redis, keys, (await getBatch(redis, keys, batchId))!);
  });

  api.post('/v1/batches/:id/cancel', { schema: { params: idParams } }, async (req) => {
    const { id } = req.params;
    await loadVisibleBatch(deps, req.principal.scope, id, noBatch(id));
    await cancelBatch(redis, keys, deps.queues, id, deps.config.resultTtlS, {
      code: 'cancelled',
      message: 'cancelled before it was sent',
    });
    return batchObject(redis, keys, (await getBatch(redis, keys, id))!);
  });
}
