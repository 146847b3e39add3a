import { describe, expect, it } from 'vitest';
import { API_REQUEST_FIELDS, requestValues, toCsvRow } from '../src/shared/batches/batch-output.js';
import {
  FINISHED_RECORD_FIELDS,
  REQUEST_FIELDS,
  storedValue,
  toStoredRequest,
  upstreamFields,
} from '../src/shared/request-record.js';

/** A failed request's hash, every field set. */
const FIELDS = {
  batch: 'batch_x',
  seq: '3',
  custom_id: 'c1',
  userid: 'u',
  model: 'm',
  status: 'failed',
  attempts: '2',
  claims: '1',
  error: '{"code":"x","message":"y"}',
  http_status: '500',
  upstream_request_id: 'req_1',
  latency_ms: '12',
  prompt_tokens: '1',
  completion_tokens: '2',
  total_tokens: '3',
  cached_tokens: '4',
  reasoning_tokens: '5',
  cost_nano: '6',
  created_at: '100000',
  finished_at: '200000',
  attempt_log: '[{"at":1,"status":500,"code":"x","ms":3}]',
  line: '4',
  expect: '{"contains":"a"}',
  grade: '{"pass":false}',
  on_failure: 'halt',
  history: 'full',
  prev: 'p',
  tags: '["t"]',
};

describe("a request's stored fields, defined once", () => {
  it('reads every hash field into the request, and shows each by its stored name', () => {
    const r = toStoredRequest('batch_x-3', FIELDS, null, null)!;
    expect(r).toMatchObject({
      batch: 'batch_x',
      seq: 3,
      customId: 'c1',
      httpStatus: 500,
      upstreamRequestId: 'req_1',
      usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3, cached_tokens: 4, reasoning_tokens: 5 },
      costNano: 6,
      attemptLog: [{ at: 1, status: 500, code: 'x', ms: 3 }],
      expect: { contains: 'a' },
      onFailure: 'halt',
      history: 'full',
      tags: ['t'],
    });
    // Each field read by its stored name is its value in the request (none left out: the hash has them all).
    for (const field of REQUEST_FIELDS) expect(storedValue(r, field), field).not.toBeNull();
    expect(storedValue(r, 'reasoning_tokens')).toBe(5);
    expect(requestValues(r, ['latency_ms', 'http_status', 'custom_id', 'cost_usd'])).toEqual({
      latency_ms: 12,
      http_status: 500,
      custom_id: 'c1',
      cost_usd: 6e-9,
    });
    expect(Object.keys(requestValues(r, API_REQUEST_FIELDS))).toEqual(API_REQUEST_FIELDS);
    expect(toCsvRow(r)).toBe('c1,failed,u,m,,x,y,2,12,1,4,2,5,3,6e-9');
  });

  it("missing fields read as none; a finished record keeps all but what the id names, with the next turn's conversation", () => {
    expect(toStoredRequest('b-1', {}, null, null)).toBeNull();
    expect(toStoredRequest('b-1', { status: 'queued' }, null, null)).toMatchObject({
      httpStatus: null,
      costNano: null,
      attemptLog: [],
      tags: [],
      onFailure: 'continue',
      history: 'memory',
      usage: { total_tokens: 0 },
    });
    expect(FINISHED_RECORD_FIELDS).not.toContain('batch');
    expect(FINISHED_RECORD_FIELDS).toContain('conv');
    expect(REQUEST_FIELDS).not.toContain('conv');
  });

  it("takes what the upstream's answer gives as it gives it: the status, and on a success the request id", () => {
    expect(upstreamFields({ status: 200, requestId: 'req_2', completion: {} })).toEqual({
      http_status: 200,
      upstream_request_id: 'req_2',
    });
    expect(upstreamFields({ status: null })).toEqual({ http_status: null });
  });
});
