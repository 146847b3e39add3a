import { decodeBody } from './body-codec.js';
import type { Expect, Grade } from './expectations.js';
import { parentOfPart } from './shard-ids.js';

/** The stored shape of one request (a Redis hash), as every part of chatq reads it (a batch's: batch-record.ts). */

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

/** A stored field's text (missing: absent or null). */
type Stored = string | null | undefined;
const text = (v: Stored): string => v ?? '';
const maybeText = (v: Stored): string | null => v ?? null;
export const num = (v: Stored): number => (v ? Number(v) : 0);
export const maybeNum = (v: Stored): number | null => (v ? Number(v) : null);
export const maybeJson = <T>(v: Stored): T | null => (v ? (JSON.parse(v) as T) : null);

/** An upstream's answer, as far as the fields a result keeps as the answer gives them need it (on a failure, its status alone). */
export interface UpstreamAnswer {
  status?: number | null | undefined;
  requestId?: string | null | undefined;
  completion?: Record<string, unknown> | undefined;
}

/** How one stored field of a request is kept and read. */
interface FieldSpec {
  /** How its hash keeps it: a whole number (a finished record keeps it as a number), or text (JSON text for some). */
  kind: 'number' | 'text';
  /** Its name in StoredRequest (none: only scripts read it); `usage`: it is one of StoredRequest.usage's counts. */
  as?: string;
  in?: 'usage';
  /** Its value in StoredRequest, from its stored text. */
  read?: (v: Stored) => unknown;
  /** Where it is kept: the hash and the finished record (both, when not said), the hash alone (its id names it), or the finished record alone. */
  kept?: 'hash' | 'finished';
  /** A result field the upstream's answer gives: its value there, which the finish writes as it is (upstreamFields). */
  answer?: (a: UpstreamAnswer) => string | number | null | undefined;
}

/**
 * A request's stored fields, the one definition: each with how it is kept, its name in StoredRequest and how it is
 * read. The request's hash holds them by name; its finished record (finished-record.ts) by place, in this order, so a
 * field is only ever added at the end (test/response-storage pins the order). A new result field that the upstream's
 * answer gives is one entry here (with `answer`): the finish writes it, every reader reads it, and the outputs can show
 * it by its stored name (batch-output.ts).
 */
const REQUEST_FIELD_SPECS = {
  batch: { kind: 'text', as: 'batch', read: (v) => parentOfPart(v ?? ''), kept: 'hash' },
  seq: { kind: 'number', as: 'seq', read: num, kept: 'hash' },
  custom_id: { kind: 'text', as: 'customId', read: text },
  userid: { kind: 'text', as: 'userid', read: text },
  model: { kind: 'text', as: 'model', read: text },
  status: { kind: 'text', as: 'status', read: (v) => v as RequestStatus },
  /** Upstream calls made for this request. */
  attempts: { kind: 'number', as: 'attempts', read: num },
  /** Runs begun by a worker; a run whose worker died before its call shows here, not in attempts. */
  claims: { kind: 'number', as: 'claims', read: num },
  error: { kind: 'text', as: 'error', read: maybeJson<RequestError> },
  http_status: { kind: 'number', as: 'httpStatus', read: maybeNum, answer: (a) => a.status },
  upstream_request_id: { kind: 'text', as: 'upstreamRequestId', read: maybeText, answer: (a) => a.requestId },
  latency_ms: { kind: 'number', as: 'latencyMs', read: maybeNum },
  prompt_tokens: { kind: 'number', as: 'prompt_tokens', in: 'usage', read: num },
  completion_tokens: { kind: 'number', as: 'completion_tokens', in: 'usage', read: num },
  total_tokens: { kind: 'number', as: 'total_tokens', in: 'usage', read: num },
  cached_tokens: { kind: 'number', as: 'cached_tokens', in: 'usage', read: num },
  reasoning_tokens: { kind: 'number', as: 'reasoning_tokens', in: 'usage', read: num },
  cost_nano: { kind: 'number', as: 'costNano', read: maybeNum },
  created_at: { kind: 'number', as: 'createdAt', read: num },
  finished_at: { kind: 'number', as: 'finishedAt', read: maybeNum },
  attempt_log: { kind: 'text', as: 'attemptLog', read: (v) => maybeJson<AttemptEntry[]>(v) ?? [] },
  line: { kind: 'number', as: 'line', read: num },
  expect: { kind: 'text', as: 'expect', read: maybeJson<Expect> },
  grade: { kind: 'text', as: 'grade', read: maybeJson<Grade> },
  on_failure: { kind: 'text', as: 'onFailure', read: (v): OnFailure => (v === 'halt' ? 'halt' : 'continue') },
  history: { kind: 'text', as: 'history', read: (v): HistoryMode => (v === 'full' ? 'full' : 'memory') },
  /** The previous turn of a "full" history script (its conversation comes first). */
  prev: { kind: 'text', as: 'prev', read: maybeText },
  /** The conversation a "full" history turn leaves for the next one (JSON text), read by the next turn's claim. */
  conv: { kind: 'text', kept: 'finished' },
  /** Its tags (pass rates by tag); empty when none. */
  tags: { kind: 'text', as: 'tags', read: (v) => maybeJson<string[]>(v) ?? [] },
} as const satisfies Record<string, FieldSpec>;

type Specs = typeof REQUEST_FIELD_SPECS;
type ReadAs<S> = S extends { read: (v: Stored) => infer T } ? T : never;
/** StoredRequest's values from the fields, by their names there: those of `usage`, or the others. */
type ValuesOf<InUsage extends boolean> = {
  -readonly [F in keyof Specs as Specs[F] extends { as: infer A extends string }
    ? (Specs[F] extends { in: 'usage' } ? true : false) extends InUsage
      ? A
      : never
    : never]: ReadAs<Specs[F]>;
};

/** One request as every reader sees it: its stored fields read (REQUEST_FIELD_SPECS), its body and its response. */
export interface StoredRequest extends ValuesOf<false> {
  id: string;
  body: Record<string, unknown>;
  response: Record<string, unknown> | null;
  usage: ValuesOf<true>;
}

/** The fields of a request's hash. */
export type RequestField = {
  [F in keyof Specs]: Specs[F] extends { kept: 'finished' } ? never : F;
}[keyof Specs];

const SPECS: [keyof Specs, FieldSpec][] = Object.entries(REQUEST_FIELD_SPECS) as [keyof Specs, FieldSpec][];
export const REQUEST_FIELDS = SPECS.filter(([, s]) => s.kept !== 'finished').map(([f]) => f) as RequestField[];
/** The whole-number fields, which a finished record keeps as numbers (fewer bytes than their digits). */
export const NUMERIC_REQUEST_FIELDS = SPECS.filter(([, s]) => s.kind === 'number').map(([f]) => f);
/** The fields a finished record keeps (finished-record.ts), in its order: all but those its id names. */
export const FINISHED_RECORD_FIELDS: readonly (keyof Specs)[] = SPECS.filter(([, s]) => s.kept !== 'hash').map(
  ([f]) => f,
);

/** A request's stored fields by name (missing ones absent or null). */
export type RequestFieldValues = Partial<Record<keyof Specs, string | null>>;

/** What the upstream's answer says that a result keeps as it is, by its stored name (the fields with `answer`). */
export type UpstreamFields = Partial<
  Record<{ [F in keyof Specs]: Specs[F] extends { answer: unknown } ? F : never }[keyof Specs], string | number | null>
>;

/** The fields with `answer`, found once (every finish asks). */
const ANSWERED = SPECS.flatMap(([name, spec]) => (spec.answer ? [[name, spec.answer] as const] : []));

/** The fields a result keeps as the upstream's answer gives them (those it gives: none undefined). */
export function upstreamFields(answer: UpstreamAnswer): UpstreamFields {
  const fields: Record<string, string | number | null> = {};
  for (const [name, from] of ANSWERED) {
    const value = from(answer);
    if (value !== undefined) fields[name] = value;
  }
  return fields;
}

/** Each read field's value in a StoredRequest, by the field's stored name (the usage counts among them). */
export type StoredValues = {
  [F in keyof Specs as Specs[F] extends { as: string } ? F : never]: ReadAs<Specs[F]>;
};

/** A read field's value in `r`, by its stored name. */
export function storedValue<F extends keyof StoredValues>(r: StoredRequest, field: F): StoredValues[F] {
  const spec: FieldSpec = REQUEST_FIELD_SPECS[field];
  const from = (spec.in === 'usage' ? r.usage : r) as unknown as Record<string, unknown>;
  return from[spec.as!] as StoredValues[F];
}

/** Builds a StoredRequest from its fields, body and response; null when it has none (expired or unknown). */
export function toStoredRequest(
  id: string,
  f: RequestFieldValues,
  body: string | null,
  response: string | null,
): StoredRequest | null {
  if (!f.status) return null;
  const usage: Record<string, unknown> = {};
  const request: Record<string, unknown> = {
    id,
    body: maybeJson(body === null ? null : decodeBody(body)) ?? {},
    response: maybeJson(response),
    usage,
  };
  for (const [name, spec] of SPECS) if (spec.as) (spec.in === 'usage' ? usage : request)[spec.as] = spec.read!(f[name]);
  return request as unknown as StoredRequest;
}
