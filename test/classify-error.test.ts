import { describe, expect, it } from 'vitest';
import { APIConnectionError, APIConnectionTimeoutError, APIError } from 'openai';
import {
  classifyError,
  classifyErrorBody,
  MalformedResponseError,
  parseDuration,
} from '../src/worker/upstream/classify-error.js';

const httpError = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  APIError.generate(status, body as object, undefined, new Headers(headers));

describe('error classification', () => {
  it('retries 408/409/5xx, timeouts, resets and malformed bodies', () => {
    for (const status of [408, 409, 500, 502, 503, 504])
      expect(classifyError(httpError(status, { error: { message: 'x' } })).action).toBe('retry');
    expect(classifyError(new APIConnectionTimeoutError())).toMatchObject({ action: 'retry', code: 'timeout' });
    expect(classifyError(new APIConnectionError({ message: 'ECONNRESET' }))).toMatchObject({
      action: 'unavailable',
      code: 'connection_error',
    });
    expect(classifyError(new MalformedResponseError('no choices'))).toMatchObject({
      action: 'retry',
      code: 'malformed_response',
    });
    expect(classifyError(new SyntaxError('Unexpected end of JSON input'))).toMatchObject({
      action: 'retry',
      code: 'malformed_response',
    });
  });

  it('fails at once on 400/404/422 with the upstream message', () => {
    expect(
      classifyError(
        httpError(400, { error: { message: 'messages is required', type: 'invalid_request_error', code: null } }),
      ),
    ).toEqual({
      action: 'fail',
      code: 'http_400',
      message: 'messages is required',
      status: 400,
    });
    expect(
      classifyError(httpError(404, { error: { message: 'model not found', code: 'model_not_found' } })),
    ).toMatchObject({ action: 'fail', code: 'model_not_found' });
    expect(classifyError(httpError(422, { error: { message: 'bad' } })).action).toBe('fail');
  });

  it('pauses on bad credentials, no balance and exhausted quota, in both error shapes', () => {
    expect(classifyError(httpError(401, { error: { message: 'bad key' } }))).toMatchObject({
      action: 'pause',
      code: 'unauthorized',
    });
    expect(classifyError(httpError(403, { error: { message: 'nope' } }))).toMatchObject({
      action: 'pause',
      code: 'forbidden',
    });
    expect(classifyError(httpError(429, { error: { message: 'quota', code: 'insufficient_quota' } }))).toMatchObject({
      action: 'pause',
      code: 'insufficient_quota',
    });
    // 302.AI's err_code shape, with any HTTP status or none.
    expect(
      classifyError(httpError(402, { error: { err_code: -10004, message: 'Insufficient balance' } })),
    ).toMatchObject({ action: 'pause', code: 'insufficient_balance', message: 'Insufficient balance' });
    expect(classifyError(httpError(429, { error: { err_code: -10018, message: 'quota reached' } }))).toMatchObject({
      action: 'pause',
      code: 'quota_exhausted',
    });
    expect(classifyError(httpError(500, { error: { err_code: -10008, message: 'no channel' } }))).toMatchObject({
      action: 'retry',
      code: 'no_available_channel',
    });
    expect(classifyErrorBody({ err_code: -10005, message: 'expired' }, 200)).toMatchObject({
      action: 'pause',
      code: 'expired_credential',
    });
    expect(classifyErrorBody({ err_code: -1024, message: 'timeout' }, 200)).toMatchObject({
      action: 'retry',
      code: 'upstream_timeout',
    });
  });

  it('reads how long to wait from retry-after-ms, retry-after and x-ratelimit-reset-*', () => {
    expect(classifyError(httpError(429, {}, { 'retry-after-ms': '1500' }))).toMatchObject({
      action: 'rate_limited',
      retryAfterMs: 1500,
    });
    expect(classifyError(httpError(429, {}, { 'retry-after': '3' })).retryAfterMs).toBe(3000);
    const now = Date.parse('2026-11-26T00:00:00Z');
    expect(
      classifyError(httpError(429, {}, { 'retry-after': 'Thu, 26 Nov 2026 00:00:05 GMT' }), now).retryAfterMs,
    ).toBe(5000);
    expect(
      classifyError(httpError(429, {}, { 'x-ratelimit-reset-requests': '1m30s', 'x-ratelimit-reset-tokens': '6s' }))
        .retryAfterMs,
    ).toBe(90_000);
    expect(classifyError(httpError(429, {})).retryAfterMs).toBeUndefined();
    expect(parseDuration('20ms')).toBe(20);
    expect(parseDuration('1h2m3.5s')).toBe(3_723_500);
    expect(parseDuration('soon')).toBeUndefined();
  });
});
