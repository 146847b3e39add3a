import { replyText } from '../expectations.js';
import type { RedisKeys } from '../keys.js';
import { readBatchRequests } from './read-store.js';
import type { RedisClient } from '../redis/redis.js';
import type { StoredRequest } from '../request-record.js';

/** One line of OpenAI Batch output, plus chatq's own fields. */
export type OutputLine = ReturnType<typeof toOutputLine>;

export function toOutputLine(r: StoredRequest) {
  const failed = r.status !== 'succeeded';
  const response =
    r.status === 'succeeded'
      ? { status_code: r.httpStatus ?? 200, request_id: r.upstreamRequestId, body: r.response }
      : r.httpStatus
        ? {
            status_code: r.httpStatus,
            request_id: r.upstreamRequestId,
            body: { error: { message: r.error?.message ?? '', code: r.error?.code ?? null } },
          }
        : null;
  return {
    id: `batch_req_${r.id}`,
    custom_id: r.customId,
    response,
    error: failed ? { code: r.error?.code ?? r.status, message: r.error?.message ?? `request ${r.status}` } : null,
    chatq: {
      userid: r.userid,
      status: r.status,
      attempts: r.attempts,
      latency_ms: r.latencyMs,
      cost_usd: r.costNano === null ? null : r.costNano / 1e9,
      usage: r.usage,
      ...(r.grade ? { grade: r.grade } : {}),
    },
  };
}

/** A batch's output file (its succeeded requests) or error file (the rest), as JSONL lines in input order. */
export async function* batchFileLines(
  redis: RedisClient,
  keys: RedisKeys,
  batchId: string,
  errors: boolean,
): AsyncGenerator<string> {
  for await (const r of readBatchRequests(redis, keys, batchId)) {
    if ((r.status === 'succeeded') !== errors) yield `${JSON.stringify(toOutputLine(r))}\n`;
  }
}

/** Token counts and cost: the last columns of a batch's CSV and of a usage report's. */
export const TOKEN_CSV_COLUMNS = [
  'prompt_tokens',
  'cached_tokens',
  'completion_tokens',
  'reasoning_tokens',
  'total_tokens',
  'cost_usd',
] as const;

export const CSV_COLUMNS = [
  'custom_id',
  'status',
  'userid',
  'model',
  'reply',
  'error_code',
  'error_message',
  'attempts',
  'latency_ms',
  ...TOKEN_CSV_COLUMNS,
] as const;

const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/g;
/** Text a spreadsheet would run as a formula (OWASP's CSV injection rule). */
const FORMULA_START = /^[=+\-@\t\r]/;

/**
 * One CSV cell: quoted when it must be, control characters removed, and text that a spreadsheet would run as a
 * formula (=, +, -, @, tab, CR first) prefixed with ' (numbers are left as they are).
 */
export function csvCell(v: unknown): string {
  let s = v === null || v === undefined ? '' : String(v);
  if (typeof v === 'string') {
    s = s.replace(CONTROL, '');
    if (FORMULA_START.test(s)) s = `'${s}`;
  }
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function toCsvRow(r: StoredRequest): string {
  const cells = [
    r.customId,
    r.status,
    r.userid,
    r.model,
    replyText(r.response) ?? '',
    r.error?.code,
    r.error?.message,
    r.attempts,
    r.latencyMs,
    r.usage.prompt_tokens,
    r.usage.cached_tokens,
    r.usage.completion_tokens,
    r.usage.reasoning_tokens,
    r.usage.total_tokens,
    r.costNano === null ? '' : r.costNano / 1e9,
  ];
  return cells.map(csvCell).join(',');
}
