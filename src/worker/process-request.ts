import { DelayedError, type Job } from 'bullmq';
import {
  assistantMessage,
  callEnd,
  classified,
  failedCallEnd,
  messagesFor,
  outageSince,
  redact,
  usageOf,
  ZERO_USAGE,
} from './call-results.js';
import { logFailure } from '../shared/redis/condition-log.js';
import type { Logger } from '../shared/logger.js';
import { costNano, findPrice, type PriceTable } from '../shared/usage/pricing.js';
import { pauseQueue } from '../shared/redis/queue-control.js';
import type { RequestQueues } from '../shared/redis/request-queue.js';
import type { RedisKeys } from '../shared/keys.js';
import type { RedisClient } from '../shared/redis/redis.js';
import type { AttemptEntry } from '../shared/request-record.js';
import { isReservation, type CapacityLimiter, type Reservation } from './capacity-limiter.js';
import { estimatePromptTokens, replyBound } from '../shared/token-bounds.js';
import { grade, replyText } from '../shared/expectations.js';
import type { ClassifiedError } from './classify-error.js';
import type { StartedRequest } from './request-claims.js';
import type { RequestStore } from './request-store.js';
import type { UpstreamClient } from './upstream-client.js';
import { traceRun, type RunTrace } from './run-trace.js';

export interface ProcessorDeps {
  redis: RedisClient;
  keys: RedisKeys;
  store: RequestStore;
  upstream: UpstreamClient;
  queues: RequestQueues;
  limiter: CapacityLimiter;
  prices: PriceTable;
  maxAttempts: number;
  /** How long a job may go on with its lane's next requests before it hands the lane back to the queue (0: never). */
  laneSliceMs: number;
  /** The reply budget assumed for a body without max_tokens (bounds a call's cost against a batch budget). */
  defaultMaxTokens: number;
  /** Wait after a 429 that named no time. */
  defaultRateLimitWaitMs?: number;
  /** How long a request may wait out an unreachable upstream before that counts as a failed attempt. */
  maxOutageMs: number;
  /** The call timeout: each call's lease (its deadline in Redis) lasts this long. */
  timeoutMs: number;
  logger: Logger;
  /** Runs a wait-for-capacity plus upstream call within the process's call concurrency. */
  callSlots: <T>(fn: () => Promise<T>) => Promise<T>;
  /** Strings that must never reach a stored error (the API key). */
  secrets: string[];
}

const PAUSED_RECHECK_MS = 1_000;
/** How soon a request whose batch budget is all reserved by calls in flight asks again. */
const BUDGET_RECHECK_MS = 300;

/** Thrown to let BullMQ retry the job after a backoff; the request stays at its lane's head. */
export class RetryLaterError extends Error {}

/** Ends a request failed (no more attempts, or an error not worth retrying), with its error redacted. */
function finishFailed(
  deps: ProcessorDeps,
  started: StartedRequest,
  c: ClassifiedError,
  attempts: AttemptEntry[],
  messages: Record<string, unknown>[],
  servingJob: string,
  t: RunTrace,
): Promise<StartedRequest | undefined> {
  return t.finish(() =>
    deps.store.finish(
      started.id,
      started,
      {
        status: 'failed',
        error: { code: c.code, message: redact(c.message, deps.secrets), ...(c.status ? { status: c.status } : {}) },
        httpStatus: c.status,
        usage: ZERO_USAGE,
        costNano: 0,
        attempts,
        ...(started.expect ? { grade: grade(started.expect, null, null) } : {}),
        ...(started.history === 'full' ? { conversation: messages.slice(0, -1) } : {}),
      },
      servingJob,
    ),
  );
}

/** Ends a request succeeded: its reply, usage and cost (at the model's price) written, its capacity settled. */
async function finishSucceeded(
  deps: ProcessorDeps,
  started: StartedRequest,
  call: Extract<CallOutcome, { ok: true }>,
  attempts: AttemptEntry[],
  messages: Record<string, unknown>[],
  servingJob: string,
  t: RunTrace,
): Promise<StartedRequest | undefined> {
  const { reply, t0, latencyMs, reservation } = call;
  attempts.push({ at: t0, status: reply.status, code: 'ok', ms: latencyMs });
  const usage = usageOf(reply.completion);
  const price = findPrice(deps.prices, started.model) ?? findPrice(deps.prices, String(reply.completion.model ?? ''));
  await deps.limiter.settle(reservation, usage.total_tokens, true);
  return t.finish(() =>
    deps.store.finish(
      started.id,
      started,
      {
        status: 'succeeded',
        response: reply.completion,
        httpStatus: reply.status,
        upstreamRequestId: reply.requestId,
        latencyMs,
        usage,
        costNano: costNano(price, usage),
        attempts,
        ...(started.expect ? { grade: grade(started.expect, replyText(reply.completion), latencyMs) } : {}),
        ...(started.history === 'full' ? { conversation: [...messages, assistantMessage(reply.completion)] } : {}),
      },
      servingJob,
    ),
  );
}

/** The most a call of this body can cost: its prompt estimate and whole reply budget at the model's prices. */
function costBound(deps: ProcessorDeps, model: string, body: Record<string, unknown>, promptTokens: number): number {
  const bound = costNano(findPrice(deps.prices, model), {
    ...ZERO_USAGE,
    prompt_tokens: promptTokens,
    completion_tokens: replyBound(body, deps.defaultMaxTokens),
  });
  return bound ?? 0;
}

/** Gives the request back to the queue, no attempt spent, to be taken again after `ms`. */
async function later(
  deps: ProcessorDeps,
  started: StartedRequest,
  attempts: AttemptEntry[],
  job: Job,
  token: string | undefined,
  ms: number,
): Promise<never> {
  await deps.store.release(started.id, started, attempts);
  await job.moveToDelayed(Date.now() + ms, token);
  throw new DelayedError();
}

type CallOutcome =
  | {
      ok: true;
      reply: Awaited<ReturnType<UpstreamClient['chat']>>;
      t0: number;
      latencyMs: number;
      reservation: Reservation;
    }
  | { ok: false; err: unknown; t0: number; latencyMs: number; reservation: Reservation };

/**
 * Within one call slot (so that no more than CHATQ_CONCURRENCY calls are in flight while a few extra jobs stand ready
 * to take a slot the moment one frees): waits for capacity, takes the call's lease (its deadline goes on the request
 * before it is sent, and the call ends by then), and calls. Or why it did not call.
 */
function callWithinSlot(
  deps: ProcessorDeps,
  started: StartedRequest,
  body: Record<string, unknown>,
  promptTokens: () => number,
  t: RunTrace,
) {
  const { store, limiter } = deps;
  return deps.callSlots(async () => {
    const reservation = await t.capacityWait(() =>
      limiter.acquire(started.model, body, promptTokens, () => store.batchGoesOn(started.batch)),
    );
    if (!isReservation(reservation)) return reservation;
    const lease = await store.beginCall(started, deps.timeoutMs);
    if (typeof lease !== 'number') {
      await limiter.settle(reservation, 0, false);
      return lease;
    }
    const t0 = Date.now();
    const span = t.call(started.model, body, started.attempt);
    try {
      const reply = await deps.upstream.chat(body, started.userid, lease);
      span?.end(callEnd(reply));
      return { ok: true, reply, t0, latencyMs: Date.now() - t0, reservation } satisfies CallOutcome;
    } catch (err) {
      span?.end(failedCallEnd(err));
      return { ok: false, err, t0, latencyMs: Date.now() - t0, reservation } satisfies CallOutcome;
    }
  });
}

/**
 * What a failed call leads to: 'again' (a 429 or an outage: everyone waits, and this request goes again without an
 * attempt spent), a retry later (BullMQ backoff), a paused queue, or the request finished failed.
 */
async function afterFailedCall(
  deps: ProcessorDeps,
  started: StartedRequest,
  call: Extract<CallOutcome, { ok: false }>,
  attempts: AttemptEntry[],
  messages: Record<string, unknown>[],
  servingJob: string,
  t: RunTrace,
): Promise<'again' | StartedRequest | undefined> {
  const { store, limiter, logger } = deps;
  const { id } = started;
  const c = classified(call.err);
  attempts.push({ at: call.t0, status: c.status, code: c.code, ms: call.latencyMs });
  const error = { code: c.code, message: redact(c.message, deps.secrets), ...(c.status ? { status: c.status } : {}) };
  // The pause goes up before this call's credentials probe is released: no waiting call may take the probe and
  // call with credentials just refused.
  if (c.action === 'pause')
    await pauseQueue(deps.queues, deps.redis, deps.keys, { code: c.code, message: error.message, at: Date.now() });
  await limiter.settle(call.reservation, 0, false);
  if (c.action === 'rate_limited') {
    // The upstream's own limit: everyone waits, and this call does not count as an attempt.
    const waitMs = c.retryAfterMs ?? deps.defaultRateLimitWaitMs ?? 1_000;
    logger.warn({ request: id, waitMs }, 'upstream answered 429: pausing all workers');
    await Promise.all([limiter.pauseFor(waitMs), deps.redis.hincrby(deps.keys.metrics, 'upstream_429', 1)]);
    return 'again';
  }
  if (c.action === 'unavailable' && Date.now() - outageSince(attempts) < deps.maxOutageMs) {
    // An outage is nobody's attempt: everyone backs off together until a call gets through, and this request goes again.
    const waitMs = await limiter.noteOutage();
    logger.warn({ request: id, waitMs }, 'upstream unreachable: all workers back off');
    return 'again';
  }
  if (c.action === 'pause') {
    await limiter.distrustCredentials();
    await store.retry(id, started, attempts, error);
    logger.error(
      { request: id, code: c.code },
      `queue paused: ${error.message}. Fix the cause, then run "chatq resume".`,
    );
    throw new RetryLaterError(`${c.code}: ${error.message}`);
  }
  if (c.action === 'retry' && started.attempt < deps.maxAttempts) {
    // A call that timed out may still be running at the upstream: its lease holds the user's next call until its deadline has passed.
    await store.retry(id, started, attempts, error, c.code === 'timeout');
    throw new RetryLaterError(`${c.code}: ${error.message}`);
  }
  return finishFailed(deps, started, c, attempts, messages, servingJob, t);
}

/**
 * One run of a claimed request: wait for capacity, call, write the result. Returns the lane's next request when it
 * was handed to this job, already claimed (the job goes on with it).
 */
async function runRequest(
  deps: ProcessorDeps,
  started: StartedRequest,
  job: Job,
  token: string | undefined,
  servingJob: () => string,
): Promise<StartedRequest | undefined> {
  const t = traceRun(started);
  try {
    const next = await runTraced(deps, started, job, token, servingJob, t);
    t.end('ended');
    return next;
  } catch (err) {
    t.end(err instanceof DelayedError ? 'delayed' : err instanceof RetryLaterError ? 'retry_later' : 'error');
    throw err;
  }
}

/** The run itself, its steps in `t`. */
async function runTraced(
  deps: ProcessorDeps,
  started: StartedRequest,
  job: Job,
  token: string | undefined,
  servingJob: () => string,
  t: RunTrace,
): Promise<StartedRequest | undefined> {
  const { id } = started;
  const messages = messagesFor(started);
  const body = { ...started.body, messages };
  const attempts: AttemptEntry[] = [];
  const back = (ms: number) => later(deps, started, attempts, job, token, ms);
  // The prompt estimate, worked out once per run (the budget and every ask for capacity use it).
  let prompt: number | undefined;
  const promptTokens = () => (prompt ??= estimatePromptTokens(body));
  if (started.budgeted) {
    const budget = await deps.store.reserveBudget(id, started, costBound(deps, started.model, body, promptTokens()));
    if (budget === 'wait') return back(BUDGET_RECHECK_MS);
    if (budget === 'never') {
      await deps.store.cancelOverBudget(id, started);
      return undefined;
    }
  }
  for (;;) {
    const call = await callWithinSlot(deps, started, body, promptTokens, t);
    // Paused while waiting (bad key, no balance...) or the worker is stopping: back to the queue, not an attempt.
    if (call === 'paused') return back(PAUSED_RECHECK_MS);
    // Another run holds the request now (this one's lock lapsed): it is that run's to call and finish.
    if (call === 'taken') return undefined;
    // Redis answered the lease too late to call within it: back to the queue, not an attempt.
    if (call === 'late') return back(PAUSED_RECHECK_MS);
    if (call === 'unreplicated') {
      const err = new Error("NOREPLICAS a call's claim is not on enough replicas");
      logFailure(deps.logger, 'warn', { request: id }, err, 'call held');
      return back(PAUSED_RECHECK_MS);
    }
    // One whose batch is being cancelled ends now; a large call with no room yet waits out of the queue's slots.
    if (call === 'cancelled') {
      await deps.store.cancelWithBatch(id, started, attempts);
      return undefined;
    }
    if ('laterMs' in call) return back(call.laterMs + Math.random() * 200);
    if (call.ok) return finishSucceeded(deps, started, call, attempts, messages, servingJob(), t);
    const next = await afterFailedCall(deps, started, call, attempts, messages, servingJob(), t);
    if (next !== 'again') return next;
  }
}

/**
 * One job = one request at the head of its lane: claim it, wait for capacity, call the endpoint, and write the
 * result (which hands the lane to its next request). Transient errors go back to BullMQ with a backoff.
 * A job serves its lane: its own request, then (within a short time slice, so that other lanes waiting for a slot
 * are not held up) the lane's next ones, without a BullMQ job per turn.
 */
export function createProcessor(deps: ProcessorDeps) {
  const { store, limiter } = deps;
  return async function processJob(job: Job, token?: string): Promise<void> {
    const since = Date.now();
    // Past its slice, the job goes on with the lane only while no other job waits for a slot (the finish script asks).
    const servingJob = () =>
      limiter.stopping || deps.laneSliceMs === 0 ? '' : Date.now() - since < deps.laneSliceMs ? job.id! : `?${job.id!}`;
    const first = await store.start(job.id!);
    if (first && 'stoppedBatch' in first) {
      // Its batch stopped (cancelled, expired, import failed): not sent, cancelled with the rest of the batch.
      await store.cancelStopped(first);
      return;
    }
    if (first && 'waitMs' in first) {
      // A turn gap: the user's previous call ended too recently. The job waits delayed, holding no slot.
      await job.moveToDelayed(Date.now() + first.waitMs, token);
      throw new DelayedError();
    }
    // Each run's result claims the lane's next request for this job, in the same round trip (within the slice).
    for (let started = first; started; ) started = await runRequest(deps, started, job, token, servingJob);
  };
}
