import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { cancelBatch } from '../shared/cancel-batch.js';
import { latencyBucket } from '../shared/latency-buckets.js';
import { addLaneHeads } from '../shared/request-queue.js';
import type { RedisKeys } from '../shared/keys.js';
import type { Usage } from '../shared/pricing.js';
import { LuaScript } from '../shared/redis.js';
import type { Expect, Grade } from '../shared/expectations.js';
import type { AttemptEntry, OnFailure, RequestError } from '../shared/request-record.js';

const startScript = new LuaScript(new URL('./start-request.lua', import.meta.url));
const requeueScript = new LuaScript(new URL('./requeue-request.lua', import.meta.url));
const finishScript = new LuaScript(new URL('./finish-request.lua', import.meta.url));

export interface StartedRequest {
  body: Record<string, unknown>;
  userid: string;
  model: string;
  history: 'memory' | 'full';
  /** The messages of the earlier turns and their replies (history "full"); empty otherwise. */
  conversation: Record<string, unknown>[];
  attempt: number;
  batch: string;
  onFailure: OnFailure;
  /** Expectations to grade the result against (evaluation suites). */
  expect: Expect | null;
}

export interface FinishedRequest {
  status: 'succeeded' | 'failed';
  response?: Record<string, unknown>;
  error?: RequestError;
  httpStatus?: number | null;
  upstreamRequestId?: string | null;
  latencyMs?: number;
  usage: Usage;
  costNano: number | undefined;
  conversation?: unknown[];
  attempts: AttemptEntry[];
  /** Upstream calls made in this run beyond the one counted when it started (waits on 429). */
  extraCalls: number;
  grade?: Grade;
}

const entriesText = (entries: AttemptEntry[]) => entries.map((e) => JSON.stringify(e)).join(',');
let dayCache = { until: 0, day: '' };
/** The UTC day of `ms`, recomputed once per day boundary rather than per request. */
function utcDay(ms: number): string {
  if (ms >= dayCache.until || ms < dayCache.until - 86_400_000) {
    const start = ms - (ms % 86_400_000);
    dayCache = { until: start + 86_400_000, day: new Date(start).toISOString().slice(0, 10) };
  }
  return dayCache.day;
}

/** The request's state transitions on the worker side, each one Lua script. */
export class RequestStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    private readonly ttlS: number,
    private readonly queue: Queue,
  ) {}

  /** Claims the request for a call; undefined when it is already finished or gone (nothing to call). */
  async start(id: string): Promise<StartedRequest | undefined> {
    const r = (await startScript.run(this.redis, [this.keys.request(id)], [Date.now(), this.keys.prefix])) as (string | number)[];
    if (r[0] !== 'run') return undefined;
    const [, body, userid, model, history, conv, attempt, batch, onFailure, expect] = r as [string, string, string, string, string, string, number, string, string, string];
    return {
      body: JSON.parse(body) as Record<string, unknown>,
      userid,
      model,
      history: history === 'full' ? 'full' : 'memory',
      conversation: conv ? (JSON.parse(conv) as Record<string, unknown>[]) : [],
      attempt,
      batch,
      onFailure: onFailure === 'halt' ? 'halt' : 'continue',
      expect: expect ? (JSON.parse(expect) as Expect) : null,
    };
  }

  /** Who a request belongs to, for finishing it without a run (a job BullMQ gave up on). */
  async identity(id: string): Promise<Pick<StartedRequest, 'userid' | 'model' | 'batch'> | undefined> {
    const [userid, model, batch] = await this.redis.hmget(this.keys.request(id), 'userid', 'model', 'batch');
    return userid && model && batch ? { userid, model, batch } : undefined;
  }

  /** A failed attempt that will be retried: back to waiting at the lane head, with the attempt logged. */
  async retry(id: string, attempts: AttemptEntry[], extraCalls: number, error: RequestError): Promise<void> {
    await requeueScript.run(this.redis, [this.keys.request(id)], [entriesText(attempts), extraCalls, JSON.stringify(error), 'retrying']);
  }

  /** Back to waiting without this run's last call (the queue was paused meanwhile): the claim is not an attempt. */
  async release(id: string, attempts: AttemptEntry[], extraCalls: number): Promise<void> {
    await requeueScript.run(this.redis, [this.keys.request(id)], [entriesText(attempts), extraCalls - 1, '', 'queued']);
  }

  /**
   * Writes the final result once, then hands the lane to its next request (added to BullMQ); a batch that has
   * spent its budget has the rest of its requests cancelled.
   */
  async finish(id: string, started: Pick<StartedRequest, 'userid' | 'model' | 'batch'>, result: FinishedRequest): Promise<void> {
    const { nextHead, overBudget } = await this.writeResult(id, started, result);
    if (nextHead) await addLaneHeads(this.queue, [nextHead]);
    if (overBudget) {
      await cancelBatch(this.redis, this.keys, this.queue, started.batch, this.ttlS, { code: 'budget_exceeded', message: 'not sent: the batch reached its max_cost_usd' });
    }
  }

  private async writeResult(id: string, started: Pick<StartedRequest, 'userid' | 'model' | 'batch'>, result: FinishedRequest): Promise<{ nextHead: string; overBudget: boolean }> {
    const k = this.keys;
    const now = Date.now();
    const day = utcDay(now);
    const fields: Record<string, string | number> = {};
    if (result.error) fields.error = JSON.stringify(result.error);
    if (result.httpStatus != null) fields.http_status = result.httpStatus;
    if (result.upstreamRequestId) fields.upstream_request_id = result.upstreamRequestId;
    if (result.latencyMs !== undefined) fields.latency_ms = result.latencyMs;
    if (result.conversation) fields.conv = JSON.stringify(result.conversation);
    if (result.grade) fields.grade = JSON.stringify(result.grade);
    const u = result.usage;
    Object.assign(fields, {
      prompt_tokens: u.prompt_tokens,
      completion_tokens: u.completion_tokens,
      total_tokens: u.total_tokens,
      cached_tokens: u.cached_tokens,
      reasoning_tokens: u.reasoning_tokens,
    });
    if (result.costNano !== undefined) fields.cost_nano = result.costNano;
    const members = [started.batch, started.userid, started.model, day];
    const keys = [
      k.request(id),
      k.batch(started.batch),
      k.lane(started.userid),
      k.lanes,
      k.usage('batch', members[0]!),
      k.usage('user', members[1]!),
      k.usage('model', members[2]!),
      k.usage('day', members[3]!),
      k.usageIndex('batch'),
      k.usageIndex('user'),
      k.usageIndex('model'),
      k.usageIndex('day'),
      k.batchRequests(started.batch),
      k.batchCustomIds(started.batch),
      k.batchErrors(started.batch),
      k.metrics,
    ];
    const args = [
      id, result.status, now, this.ttlS, k.prefix, JSON.stringify(fields), entriesText(result.attempts), result.extraCalls, ...members,
      u.prompt_tokens, u.completion_tokens, u.total_tokens, u.cached_tokens, u.reasoning_tokens, result.costNano ?? '', result.error?.code ?? '', result.latencyMs !== undefined ? latencyBucket(result.latencyMs) : '',
      result.grade ? (result.grade.pass ? 'pass' : 'fail') : '',
      result.response ? JSON.stringify(result.response) : '',
    ];
    const [, nextHead, overBudget] = (await finishScript.run(this.redis, keys, args)) as [string, string, number];
    return { nextHead, overBudget: overBudget === 1 };
  }
}
