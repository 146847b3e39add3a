import { replyText } from '../expectations.js';
import type { RedisKeys } from '../keys.js';
import { readBatchRequests } from './read-store.js';
import type { RedisClient } from '../redis/redis.js';
import { storedValue, type StoredRequest, type StoredValues } from '../request-record.js';

/**
 * A request's values as chatq's outputs show them, by their names there: the results' `chatq` block (CHATQ_FIELDS),
 * the CSV's columns (CSV_COLUMNS) and the API's request object (API_REQUEST_FIELDS) pick from them. Every stored
 * field a request reads is one by its stored name, as read (request-record.ts); these are the values made from them,
 * or named otherwise. What an output shows is its name in that output's list.
 */
const MADE_VALUES = {
  id: (r) => r.id,
  batch_id: (r) => r.batch,
  usage: (r) => r.usage,
  cost_usd: (r) => (r.costNano === null ? null : r.costNano / 1e9),
  reply: (r) => replyText(r.response) ?? '',
  response: (r) => r.response,
  error_code: (r) => r.error?.code,
  error_message: (r) => r.error?.message,
  created_at: (r) => Math.floor(r.createdAt / 1000),
  finished_at: (r) => (r.finishedAt === null ? null : Math.floor(r.finishedAt / 1000)),
} satisfies Record<string, (r: StoredRequest) => unknown>;

type MadeValues = { [N in keyof typeof MADE_VALUES]: ReturnType<(typeof MADE_VALUES)[N]> };
type RequestValues = Omit<StoredValues, keyof MadeValues> & MadeValues;

/** The values `names` of a request, in that order. */
export function requestValues<N extends keyof RequestValues>(
  r: StoredRequest,
  names: readonly N[],
): Pick<RequestValues, N> {
  const values: Record<string, unknown> = {};
  for (const name of names)
    values[name] = Object.hasOwn(MADE_VALUES, name)
      ? MADE_VALUES[name as keyof MadeValues](r)
      : storedValue(r, name as keyof StoredValues);
  return values as Pick<RequestValues, N>;
}

/** The `chatq` block of a results line (beside OpenAI's fields), and its grade when it has one. */
const CHATQ_FIELDS = ['userid', 'status', 'attempts', 'latency_ms', 'cost_usd', 'usage'] as const;

/** The API's request object (GET /v1/requests/:id, a user's requests), after its `object`. */
export const API_REQUEST_FIELDS = [
  'id',
  'batch_id',
  'custom_id',
  'line',
  'userid',
  'model',
  'status',
  'attempts',
  'claims',
  'attempt_log',
  'latency_ms',
  'usage',
  'cost_usd',
  'response',
  'error',
  'created_at',
  'finished_at',
] as const;

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
    chatq: { ...requestValues(r, CHATQ_FIELDS), ...(r.grade ? { grade: r.grade } : {}) },
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
  return Object.values(requestValues(r, CSV_COLUMNS)).map(csvCell).join(',');
}
