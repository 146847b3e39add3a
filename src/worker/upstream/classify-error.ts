import { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';
import { ResponseTooLargeError } from './http-transport.js';

/**
 * What to do with a failed upstream call:
 * - retry: transient; back off with jitter and try again (counts as an attempt)
 * - rate_limited: the upstream's own limit; wait as told and try again (not an attempt)
 * - unavailable: the upstream cannot be reached at all (an outage, not this request's fault); every worker waits
 *   with backoff and tries again (not an attempt, up to CHATQ_MAX_OUTAGE_MS per request)
 * - pause: every other request would fail the same way (bad key, no balance, quota); pause the queue
 * - fail: this request is wrong; fail it now with the upstream's message
 */
export type ErrorAction = 'retry' | 'rate_limited' | 'unavailable' | 'pause' | 'fail';

export interface ClassifiedError {
  action: ErrorAction;
  code: string;
  message: string;
  status: number | null;
  /** How long the upstream asked us to wait (429 headers), when it said. */
  retryAfterMs?: number;
}

/** An upstream answer that is not a chat completion (cut short, not JSON, or without choices). */
export class MalformedResponseError extends Error {}

/** 302.AI's negative err_code values (no balance, quota, bad key: docs/behaviour.md, "Bad credentials cost one call"). */
const ERR_CODES: Record<number, { action: ErrorAction; code: string }> = {
  [-10001]: { action: 'pause', code: 'missing_api_key' },
  [-10004]: { action: 'pause', code: 'insufficient_balance' },
  [-10005]: { action: 'pause', code: 'expired_credential' },
  [-10006]: { action: 'pause', code: 'quota_exhausted' },
  [-10007]: { action: 'pause', code: 'quota_exhausted' },
  [-10018]: { action: 'pause', code: 'quota_exhausted' },
  [-10008]: { action: 'retry', code: 'no_available_channel' },
  [-1024]: { action: 'retry', code: 'upstream_timeout' },
};

const OPENAI_PAUSE_CODES = new Set([
  'insufficient_quota',
  'invalid_api_key',
  'account_deactivated',
  'billing_hard_limit_reached',
]);

function headerMs(headers: Headers | undefined, now: number): number | undefined {
  if (!headers) return undefined;
  const ms = Number(headers.get('retry-after-ms'));
  if (headers.get('retry-after-ms') && Number.isFinite(ms) && ms >= 0) return ms;
  const ra = headers.get('retry-after');
  if (ra) {
    const s = Number(ra);
    if (Number.isFinite(s) && s >= 0) return s * 1000;
    const date = Date.parse(ra);
    if (!Number.isNaN(date)) return Math.max(0, date - now);
  }
  let reset: number | undefined;
  for (const name of ['x-ratelimit-reset-requests', 'x-ratelimit-reset-tokens', 'x-ratelimit-reset']) {
    const v = headers.get(name);
    const parsed = v ? parseDuration(v) : undefined;
    if (parsed !== undefined) reset = Math.max(reset ?? 0, parsed);
  }
  return reset;
}

/** OpenAI's reset durations: "1s", "6m0s", "20ms", "1h2m3.5s", or a bare number of seconds. */
export function parseDuration(v: string): number | undefined {
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v) * 1000;
  const re = /(\d+(?:\.\d+)?)(ms|h|m|s)/g;
  let total = 0;
  let matched = '';
  for (const m of v.matchAll(re)) {
    const n = Number(m[1]);
    total += m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : m[2] === 'm' ? n * 60_000 : n * 3_600_000;
    matched += m[0];
  }
  return matched === v ? total : undefined;
}

/** The err_code of a 302.AI error body, when there is one. */
function errCodeOf(error: unknown): number | undefined {
  const code = (error as { err_code?: unknown } | undefined)?.err_code;
  return typeof code === 'number' ? code : undefined;
}

function messageOf(error: unknown, fallback: string): string {
  const m = (error as { message?: unknown } | undefined)?.message;
  return typeof m === 'string' && m ? m : fallback;
}

/** Classifies an error body that came with HTTP 200 (302.AI sometimes answers so). */
export function classifyErrorBody(error: unknown, status: number | null): ClassifiedError {
  const errCode = errCodeOf(error);
  const known = errCode !== undefined ? ERR_CODES[errCode] : undefined;
  const message = messageOf(error, 'upstream error');
  if (known) return { ...known, message, status };
  return { action: 'fail', code: `upstream_error${errCode !== undefined ? `_${errCode}` : ''}`, message, status };
}

export function classifyError(err: unknown, now = Date.now()): ClassifiedError {
  if (err instanceof APIUserAbortError || err instanceof APIConnectionTimeoutError) {
    return { action: 'retry', code: 'timeout', message: 'the upstream did not answer in time', status: null };
  }
  // The SDK reports a failed fetch as a connection error; an answer too large to read is the upstream's fault, not an outage.
  const tooLarge =
    err instanceof ResponseTooLargeError ||
    (err instanceof APIConnectionError && err.cause instanceof ResponseTooLargeError);
  if (err instanceof MalformedResponseError || err instanceof SyntaxError || tooLarge) {
    return {
      action: 'retry',
      code: 'malformed_response',
      message: `the upstream answered with a malformed body: ${err.message}`,
      status: null,
    };
  }
  if (err instanceof APIConnectionError) {
    return {
      action: 'unavailable',
      code: 'connection_error',
      message: `connection to the upstream failed: ${err.message}`,
      status: null,
    };
  }
  if (err instanceof APIError && typeof err.status === 'number') {
    const status = err.status;
    const errCode = errCodeOf(err.error);
    const known = errCode !== undefined ? ERR_CODES[errCode] : undefined;
    const message = messageOf(err.error, err.message);
    if (known) return { ...known, message, status };
    if (typeof err.code === 'string' && OPENAI_PAUSE_CODES.has(err.code))
      return { action: 'pause', code: err.code, message, status };
    if (status === 401 || status === 403)
      return { action: 'pause', code: status === 401 ? 'unauthorized' : 'forbidden', message, status };
    if (status === 402) return { action: 'pause', code: 'insufficient_balance', message, status };
    if (status === 429) {
      const retryAfterMs = headerMs(err.headers, now);
      return {
        action: 'rate_limited',
        code: 'rate_limited',
        message,
        status,
        ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
      };
    }
    if (status === 408 || status === 409 || status >= 500)
      return { action: 'retry', code: `http_${status}`, message, status };
    return { action: 'fail', code: typeof err.code === 'string' ? err.code : `http_${status}`, message, status };
  }
  return {
    action: 'retry',
    code: 'unexpected_error',
    message: err instanceof Error ? err.message : String(err),
    status: null,
  };
}

/** Codes chatq gives failures itself (a label of `chatq_request_failures_total`), beside 302.AI's and OpenAI's. */
const OWN_CODES = new Set([
  'connection_error',
  'malformed_response',
  'rate_limited',
  'timeout',
  'unexpected_error',
  'unauthorized',
  'forbidden',
]);
const KNOWN_CODES = new Set([...OWN_CODES, ...OPENAI_PAUSE_CODES, ...Object.values(ERR_CODES).map((e) => e.code)]);

/**
 * A failure's reason for the metrics: its code when chatq knows it (its own, 302.AI's, OpenAI's pausing ones, an HTTP
 * status), else "upstream_error": an upstream's own codes are not a label (they would make series without bound).
 */
export const failureReason = (code: string): string =>
  KNOWN_CODES.has(code) || /^http_\d{3}$/.test(code) ? code : 'upstream_error';
