import { decodeBody } from './body-codec.js';
import type { Expect, Grade } from './expectations.js';
import { DEFAULT_PROJECT, parentOfPart } from './keys.js';

/** The stored shape of one request (a Redis hash) and of one batch, as every part of chatq reads them. */

export const FINISHED_STATUSES = ['succeeded', 'failed', 'cancelled', 'skipped', 'expired'] as const;
export type FinishedStatus = (typeof FINISHED_STATUSES)[number];
export type RequestStatus = 'queued' | 'running' | 'retrying' | FinishedStatus;

export type OnFailure = 'continue' | 'halt';
export type HistoryMode = 'memory' | 'full';

export interface RequestError {
  code: string;
  message: string;
  status?: number;
}

/** A request keeps this many entries of its attempt log at most: its first and its latest ones. */
export const ATTEMPT_LOG_MOST = 50;

export interface AttemptEntry {
  at: number;
  status: number | null;
  code: string;
  ms: number;
}

/** What the producer hands to the enqueue script for one request. */
export interface RequestDraft {
  customId: string;
  userid: string;
  model: string;
  /** The chat body to send, without `userid` (added at call time). */
  body: Record<string, unknown>;
  line: number;
  onFailure: OnFailure;
  history: HistoryMode;
  /** Position in its conversation script (0-based); a "full" turn after the first is sent with the earlier turns. */
  turn?: number;
  scriptId?: string;
  expect?: unknown;
  tags?: string[];
  /** The least time between the end of the user's previous call and this one's start (ms). */
  gapMs?: number;
}

export interface StoredRequest {
  id: string;
  batch: string;
  seq: number;
  customId: string;
  userid: string;
  model: string;
  status: RequestStatus;
  /** Upstream calls made for this request. */
  attempts: number;
  /** Runs begun by a worker; a run whose worker died before its call shows here, not in attempts. */
  claims: number;
  body: Record<string, unknown>;
  response: Record<string, unknown> | null;
  error: RequestError | null;
  httpStatus: number | null;
  upstreamRequestId: string | null;
  latencyMs: number | null;
  usage: {
    prompt_tokens: number;
    completion_tokens: number;
    total_tokens: number;
    cached_tokens: number;
    reasoning_tokens: number;
  };
  costNano: number | null;
  createdAt: number;
  finishedAt: number | null;
  attemptLog: AttemptEntry[];
  line: number;
  expect: Expect | null;
  grade: Grade | null;
  onFailure: OnFailure;
  history: HistoryMode;
  /** The previous turn of a "full" history script (its conversation comes first). */
  prev: string | null;
  /** Its tags (pass rates by tag); empty when none. */
  tags: string[];
}

/** A request's stored fields (hash fields), each with its kind: whole numbers, or text (JSON text for some). */
const FIELD_KINDS = {
  batch: 'text',
  seq: 'number',
  custom_id: 'text',
  userid: 'text',
  model: 'text',
  status: 'text',
  attempts: 'number',
  claims: 'number',
  error: 'text',
  http_status: 'number',
  upstream_request_id: 'text',
  latency_ms: 'number',
  prompt_tokens: 'number',
  completion_tokens: 'number',
  total_tokens: 'number',
  cached_tokens: 'number',
  reasoning_tokens: 'number',
  cost_nano: 'number',
  created_at: 'number',
  finished_at: 'number',
  attempt_log: 'text',
  line: 'number',
  expect: 'text',
  grade: 'text',
  on_failure: 'text',
  history: 'text',
  prev: 'text',
  tags: 'text',
} as const satisfies Record<string, 'number' | 'text'>;

export type RequestField = keyof typeof FIELD_KINDS;

/**
 * What the upstream's answer says that a result keeps as it is, by its stored name: a finish writes each one given
 * (finish-call.ts), readers take it from the request's fields like any other.
 */
export type UpstreamFields = Partial<
  Record<Extract<RequestField, 'http_status' | 'upstream_request_id'>, string | number | null>
>;
export const REQUEST_FIELDS = Object.keys(FIELD_KINDS) as RequestField[];
/** The whole-number fields, which a finished record keeps as numbers (fewer bytes than their digits). */
export const NUMERIC_REQUEST_FIELDS = REQUEST_FIELDS.filter((f) => FIELD_KINDS[f] === 'number');

/** Request fields added after the finished record's first format: they come after `conv`, in the order added. */
const ADDED_FIELDS: readonly RequestField[] = ['tags'];

/**
 * The fields a finished record keeps (finished-record.ts), in its order: a request's hash fields that readers use,
 * but `batch` and `seq`, which its id names (`<batch>-<seq>`), and with `conv`, which the next turn of a "full"
 * history script reads. Part of the stored format: a field is only ever added at the end.
 */
export const FINISHED_RECORD_FIELDS: readonly (RequestField | 'conv')[] = [
  ...REQUEST_FIELDS.filter((f) => f !== 'batch' && f !== 'seq' && !ADDED_FIELDS.includes(f)),
  'conv',
  ...ADDED_FIELDS,
];

/** A request's stored fields by name (missing ones absent or null). */
export type RequestFieldValues = Partial<Record<RequestField, string | null>>;

const num = (v: string | null | undefined): number => (v ? Number(v) : 0);
const maybeNum = (v: string | null | undefined): number | null => (v ? Number(v) : null);
const maybeJson = <T>(v: string | null | undefined): T | null => (v ? (JSON.parse(v) as T) : null);

/** Builds a StoredRequest from its fields, body and response; null when it has none (expired or unknown). */
export function toStoredRequest(
  id: string,
  f: RequestFieldValues,
  body: string | null,
  response: string | null,
): StoredRequest | null {
  if (!f.status) return null;
  return {
    id,
    // A part's requests belong to its batch (a sharded batch's part is an inner record: keys.ts).
    batch: parentOfPart(f.batch ?? ''),
    seq: num(f.seq),
    customId: f.custom_id ?? '',
    userid: f.userid ?? '',
    model: f.model ?? '',
    status: f.status as RequestStatus,
    attempts: num(f.attempts),
    claims: num(f.claims),
    body: maybeJson(body === null ? null : decodeBody(body)) ?? {},
    response: maybeJson(response),
    error: maybeJson(f.error),
    httpStatus: maybeNum(f.http_status),
    upstreamRequestId: f.upstream_request_id ?? null,
    latencyMs: maybeNum(f.latency_ms),
    usage: {
      prompt_tokens: num(f.prompt_tokens),
      completion_tokens: num(f.completion_tokens),
      total_tokens: num(f.total_tokens),
      cached_tokens: num(f.cached_tokens),
      reasoning_tokens: num(f.reasoning_tokens),
    },
    costNano: maybeNum(f.cost_nano),
    createdAt: num(f.created_at),
    finishedAt: maybeNum(f.finished_at),
    attemptLog: maybeJson<AttemptEntry[]>(f.attempt_log) ?? [],
    line: num(f.line),
    expect: maybeJson(f.expect),
    grade: maybeJson(f.grade),
    onFailure: f.on_failure === 'halt' ? 'halt' : 'continue',
    history: f.history === 'full' ? 'full' : 'memory',
    prev: f.prev ?? null,
    tags: maybeJson<string[]>(f.tags) ?? [],
  };
}

/** "expiring": its completion window ended, the calls in flight finish (shown as OpenAI's "finalizing"). */
export type BatchStatus =
  | 'validating'
  | 'in_progress'
  | 'completed'
  | 'cancelling'
  | 'cancelled'
  | 'failed'
  | 'expiring'
  | 'expired';

export interface BatchRecord {
  id: string;
  project: string;
  name: string;
  status: BatchStatus;
  input: string;
  createdAt: number;
  inProgressAt: number | null;
  completedAt: number | null;
  cancelledAt: number | null;
  /** Requests in the batch: final once the input is read, the count so far while it is being imported. */
  total: number;
  succeeded: number;
  failed: number;
  cancelled: number;
  skipped: number;
  /** Requests not done within the completion window. */
  expired: number;
  rejectedLines: number;
  metadata: Record<string, string>;
  /** Final failures by error code. */
  errors: Record<string, number>;
  /** Requests with expectations that passed / failed their grading. */
  evalPass: number;
  evalFail: number;
  /** Requests whose judge gave no verdict (expect.judge). */
  evalUngraded: number;
  /** Gradings not written yet: the batch ends when they are. */
  judging: number;
  inputFileId: string | null;
  /** Cancel asked while the batch was still being imported. */
  cancelRequested: boolean;
  maxCostNano: number | null;
  cancellingAt: number | null;
  failedAt: number | null;
  /** Why the import stopped before the end of its input (status "failed"), with how many requests it had enqueued. */
  importError: { code: string; message: string; enqueued: number } | null;
  /** The completion window as given ("24h") and when it ends (ms); null: none. */
  completionWindow: string | null;
  expiresAt: number | null;
  expiredAt: number | null;
  /** A memory benchmark run: which benchmark its input was (its questions report in that paper's shape). */
  benchmark: 'longmemeval' | 'locomo' | null;
}

export function toBatchRecord(id: string, h: Record<string, string>): BatchRecord | null {
  if (!h.status) return null;
  return {
    id,
    project: h.project || DEFAULT_PROJECT,
    name: h.name ?? '',
    status: h.status as BatchStatus,
    input: h.input ?? '',
    createdAt: num(h.created_at),
    inProgressAt: maybeNum(h.in_progress_at),
    completedAt: maybeNum(h.completed_at),
    cancelledAt: maybeNum(h.cancelled_at),
    total: num(h.total) || num(h.enqueued),
    succeeded: num(h.succeeded),
    failed: num(h.failed),
    cancelled: num(h.cancelled),
    skipped: num(h.skipped),
    expired: num(h.expired),
    rejectedLines: num(h.rejected_lines),
    metadata: maybeJson<Record<string, string>>(h.metadata) ?? {},
    evalPass: num(h.eval_pass),
    evalFail: num(h.eval_fail),
    evalUngraded: num(h.eval_ungraded),
    judging: num(h.judging),
    inputFileId: h.input_file_id ?? null,
    cancelRequested: h.cancel_requested !== undefined,
    maxCostNano: maybeNum(h.max_cost_nano),
    cancellingAt: maybeNum(h.cancelling_at),
    failedAt: maybeNum(h.failed_at),
    importError: maybeJson(h.import_error),
    completionWindow: h.completion_window ?? null,
    expiresAt: maybeNum(h.expires_at),
    expiredAt: maybeNum(h.expired_at),
    benchmark: h.benchmark === 'longmemeval' || h.benchmark === 'locomo' ? h.benchmark : null,
    errors: Object.fromEntries(
      Object.entries(h)
        .filter(([k]) => k.startsWith('error:'))
        .map(([k, v]) => [k.slice(6), Number(v)]),
    ),
  };
}

export const batchDone = (b: BatchRecord) => b.succeeded + b.failed + b.cancelled + b.skipped + b.expired;
/** A batch that will change no more. */
/** The status a batch ends in when its last request is done, by the status it had then (a cancel asked, past its window). */
export const BATCH_FINAL_STATUS = {
  in_progress: 'completed',
  cancelling: 'cancelled',
  expiring: 'expired',
} as const satisfies Partial<Record<BatchStatus, BatchStatus>>;
/** The statuses a batch ends in: the final ones, or failed (its import failed). */
export const ENDED_BATCH_STATUSES: readonly BatchStatus[] = [...Object.values(BATCH_FINAL_STATUS), 'failed'];
export const batchEnded = (s: string) => ENDED_BATCH_STATUSES.includes(s as BatchStatus);
