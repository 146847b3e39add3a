import type { RedisClient } from '../shared/redis/redis.js';
import type { RedisKeys } from '../shared/keys.js';
import { getUsages, type UsageRow } from '../shared/batches/read-store.js';
import { batchEnded, type BatchRecord } from '../shared/batch-record.js';

const seconds = (ms: number | null) => (ms === null ? null : Math.floor(ms / 1000));

export const outputFileId = (batchId: string) => `file-out-${batchId}`;
export const errorFileId = (batchId: string) => `file-err-${batchId}`;

/** The batch behind a generated output file id ("file-out-<batch>": succeeded requests; "file-err-<batch>": the rest). */
export function parseGeneratedFileId(id: string): { batchId: string; errors: boolean } | null {
  const m = /^file-(out|err)-(batch_[0-9a-f]{24})$/.exec(id);
  return m ? { batchId: m[2]!, errors: m[1] === 'err' } : null;
}

/** A batch's output file (its succeeded requests) and error file (the rest), once it has ended and when it has any. */
export function generatedFileIds(b: BatchRecord): { output: string | null; error: string | null } {
  const finished = batchEnded(b.status);
  return {
    output: finished && b.succeeded > 0 ? outputFileId(b.id) : null,
    error: finished && notSucceededOf(b) > 0 ? errorFileId(b.id) : null,
  };
}

const notSucceededOf = (b: BatchRecord) => b.failed + b.skipped + b.cancelled + b.expired;

interface LineErrorRecord {
  line: number;
  field?: string;
  message: string;
}

/** chatq's statuses in OpenAI's words: an expiring batch (its calls in flight finishing) is "finalizing". */
function openAiStatus(b: BatchRecord): string {
  if (b.status === 'validating' && b.cancelRequested) return 'cancelling';
  return b.status === 'expiring' ? 'finalizing' : b.status;
}

/** A batch as the OpenAI Batch API shows it, plus chatq's cost and counters. */
export function toBatchObject(b: BatchRecord, usage: UsageRow, lineErrors: LineErrorRecord[]) {
  const files = generatedFileIds(b);
  const importError = b.importError
    ? [
        {
          code: b.importError.code,
          message: `the import stopped after ${b.importError.enqueued} requests: ${b.importError.message}`,
          param: null,
          line: null,
        },
      ]
    : [];
  const errors = [
    ...importError,
    ...lineErrors.map((e) => ({ code: 'invalid_line', message: e.message, param: e.field ?? null, line: e.line })),
  ];
  return {
    id: b.id,
    object: 'batch' as const,
    endpoint: '/v1/chat/completions',
    errors: errors.length ? { object: 'list', data: errors } : null,
    input_file_id: b.inputFileId ?? b.input,
    completion_window: b.completionWindow,
    status: openAiStatus(b),
    output_file_id: files.output,
    error_file_id: files.error,
    created_at: seconds(b.createdAt),
    in_progress_at: seconds(b.inProgressAt),
    expires_at: seconds(b.expiresAt),
    finalizing_at: seconds(b.completedAt ?? b.expiredAt),
    completed_at: seconds(b.completedAt),
    failed_at: seconds(b.failedAt),
    expired_at: seconds(b.expiredAt),
    cancelling_at: seconds(b.cancellingAt),
    cancelled_at: seconds(b.cancelledAt),
    request_counts: { total: b.total, completed: b.succeeded, failed: notSucceededOf(b) },
    metadata: b.metadata,
    usage: {
      input_tokens: usage.prompt_tokens,
      input_tokens_details: { cached_tokens: usage.cached_tokens },
      output_tokens: usage.completion_tokens,
      output_tokens_details: { reasoning_tokens: usage.reasoning_tokens },
      total_tokens: usage.total_tokens,
    },
    chatq: {
      name: b.name,
      cost_usd: usage.cost_nano / 1e9,
      repeat_cost_usd: usage.repeat_cost_nano / 1e9,
      repeat_calls: usage.repeat_calls,
      grading_cost_usd: usage.grading_cost_nano / 1e9,
      grading_calls: usage.grading_calls,
      unpriced_requests: usage.unpriced,
      max_cost_usd: b.maxCostNano === null ? null : b.maxCostNano / 1e9,
      succeeded: b.succeeded,
      failed: b.failed,
      skipped: b.skipped,
      cancelled: b.cancelled,
      expired: b.expired,
      rejected_lines: b.rejectedLines,
      failures_by_code: b.errors,
      evals:
        b.evalPass + b.evalFail + b.evalUngraded + b.judging
          ? { passed: b.evalPass, failed: b.evalFail, ungraded: b.evalUngraded, judging: b.judging }
          : null,
    },
  };
}

/** The API's view of batch records: with their usage (one fold, one pipeline) and their first line errors. */
export async function batchObjects(redis: RedisClient, keys: RedisKeys, batches: readonly BatchRecord[]) {
  const [usages, errors] = await Promise.all([
    getUsages(
      redis,
      keys,
      batches.map((b) => ({ project: b.project, dim: 'batch' as const, key: b.id })),
    ),
    batches.length ? batches.reduce((p, b) => p.lrange(keys.batchErrors(b.id), 0, 99), redis.pipeline()).exec() : [],
  ]);
  return batches.map((b, i) =>
    toBatchObject(
      b,
      usages[i]!,
      ((errors?.[i]?.[1] ?? []) as string[]).map((e) => JSON.parse(e) as LineErrorRecord),
    ),
  );
}

export const batchObject = async (redis: RedisClient, keys: RedisKeys, batch: BatchRecord) =>
  (await batchObjects(redis, keys, [batch]))[0]!;
