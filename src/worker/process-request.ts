import { DelayedError, type Job } from 'bullmq';
import { logFailure } from '../shared/condition-log.js';
import type { Logger } from '../shared/logger.js';
import { costNano, findPrice, type PriceTable, type Usage } from '../shared/pricing.js';
import { pauseQueue } from '../shared/queue-control.js';
import type { RequestQueues } from '../shared/request-queue.js';
import type { RedisKeys } from '../shared/keys.js';
import type { RedisClient } from '../shared/redis.js';
import type { AttemptEntry } from '../shared/request-record.js';
import { isReservation, type CapacityLimiter } from './capacity-limiter.js';
import { estimatePromptTokens, replyBound } from './token-bounds.js';
import { grade, replyText } from '../shared/expectations.js';
import { classifyError, type ClassifiedError } from './classify-error.js';
import type { StartedRequest } from './request-claims.js';
import type { RequestStore } from './request-store.js';
import { UpstreamBodyError, type UpstreamClient } from './upstream-client.js';

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

const ZERO_USAGE: Usage = {
  prompt_tokens: 0,
  completion_tokens: 0,
  total_tokens: 0,
  cached_tokens: 0,
  reasoning_tokens: 0,
};

export function usageOf(completion: Record<string, unknown>): Usage {
  const u = (completion.usage ?? {}) as Record<string, unknown>;
  const n = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? Math.round(v) : 0);
  const prompt = n(u.prompt_tokens);
  const completionTokens = n(u.completion_tokens);
  return {
    prompt_tokens: prompt,
    completion_tokens: completionTokens,
    total_tokens: n(u.total_tokens) || prompt + completionTokens,
    cached_tokens: n((u.prompt_tokens_details as Record<string, unknown> | undefined)?.cached_tokens),
    reasoning_tokens: n((u.completion_tokens_details as Record<string, unknown> | undefined)?.reasoning_tokens),
  };
}

/** When the request's current run of "cannot reach the upstream" answers began (now when it has none). */
function outageSince(attempts: AttemptEntry[]): number {
  let since = Date.now();
  for (let i = attempts.length - 1; i >= 0 && attempts[i]!.code === 'connection_error'; i--) since = attempts[i]!.at;
  return since;
}

/** Exponential backoff with equal jitter, capped. */
export function backoffDelay(attemptsMade: number, baseMs: number, capMs = 60_000): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.max(0, attemptsMade - 1));
  return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
}

function redact(text: string, secrets: string[]): string {
  return secrets.reduce((t, s) => (s ? t.split(s).join('[redacted]') : t), text);
}

/** The messages to send: for a "full" history turn, the earlier turns and their real replies come first. */
function messagesFor(started: StartedRequest): Record<string, unknown>[] {
  const own = Array.isArray(started.body.messages) ? (started.body.messages as Record<string, unknown>[]) : [];
  return started.history === 'full' ? [...started.conversation, ...own] : own;
}

function assistantMessage(completion: Record<string, unknown>): Record<string, unknown> {
  const choice = (completion.choices as { message?: Record<string, unknown> }[])[0];
  return { role: 'assistant', content: choice?.message?.content ?? '' };
}

/**
 * One job = one request at the head of its lane: claim it, wait for capacity, call the endpoint, and write the
 * result (which hands the lane to its next request). Transient errors go back to BullMQ with a backoff.
 */
export function createProcessor(deps: ProcessorDeps) {
  const { store, upstream, limiter, logger } = deps;

  async function finishFailed(
    id: string,
    started: StartedRequest,
    c: ClassifiedError,
    attempts: AttemptEntry[],
    messages: Record<string, unknown>[],
    servingJob: string,
  ): Promise<StartedRequest | undefined> {
    return store.finish(
      id,
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
    );
  }

  /** The most a call of this body can cost: its prompt estimate and whole reply budget at the model's prices. */
  function costBound(model: string, body: Record<string, unknown>, promptTokens: number): number {
    const bound = costNano(findPrice(deps.prices, model), {
      ...ZERO_USAGE,
      prompt_tokens: promptTokens,
      completion_tokens: replyBound(body, deps.defaultMaxTokens),
    });
    return bound ?? 0;
  }

  /** Gives the request back to the queue, no attempt spent, to be taken again after `ms`. */
  async function later(
    id: string,
    started: StartedRequest,
    attempts: AttemptEntry[],
    job: Job,
    token: string | undefined,
    ms: number,
  ): Promise<never> {
    await store.release(id, started, attempts);
    await job.moveToDelayed(Date.now() + ms, token);
    throw new DelayedError();
  }

  /**
   * One run of a claimed request: wait for capacity, call, write the result. Returns the lane's next request when it
   * was handed to this job, already claimed (the job goes on with it).
   */
  async function runRequest(
    started: StartedRequest,
    job: Job,
    token: string | undefined,
    servingJob: () => string,
  ): Promise<StartedRequest | undefined> {
    const { id } = started;
    const messages = messagesFor(started);
    const body = { ...started.body, messages };
    const attempts: AttemptEntry[] = [];
    // The prompt estimate, worked out once per run (the budget and every ask for capacity use it).
    let prompt: number | undefined;
    const promptTokens = () => (prompt ??= estimatePromptTokens(body));
    if (started.budgeted) {
      const budget = await store.reserveBudget(id, started, costBound(started.model, body, promptTokens()));
      if (budget === 'wait') return later(id, started, attempts, job, token, BUDGET_RECHECK_MS);
      if (budget === 'never') {
        await store.cancelOverBudget(id, started);
        return undefined;
      }
    }
    for (;;) {
      // A call slot covers waiting for capacity and the call itself, so that no more than CHATQ_CONCURRENCY
      // calls are in flight while a few extra jobs stand ready to take a slot the moment one frees.
      const call = await deps.callSlots(async () => {
        const reservation = await limiter.acquire(started.model, body, promptTokens, () =>
          store.batchGoesOn(started.batch),
        );
        if (!isReservation(reservation)) return reservation;
        // The call's lease: its deadline goes on the request before it is sent, and the call ends by then.
        const lease = await store.beginCall(started, deps.timeoutMs);
        if (typeof lease !== 'number') {
          await limiter.settle(reservation, 0, false);
          return lease;
        }
        const t0 = Date.now();
        try {
          return {
            ok: true as const,
            reply: await upstream.chat(body, started.userid, lease),
            t0,
            latencyMs: Date.now() - t0,
            reservation,
          };
        } catch (err) {
          return { ok: false as const, err, t0, latencyMs: Date.now() - t0, reservation };
        }
      });
      // Paused while waiting (bad key, no balance...) or the worker is stopping: back to the queue, not an attempt.
      if (call === 'paused') return later(id, started, attempts, job, token, PAUSED_RECHECK_MS);
      // A large call with no room yet waits out of the queue's slots; one whose batch is being cancelled ends now.
      // Another run holds the request now (this one's lock lapsed): it is that run's to call and finish.
      if (call === 'taken') return undefined;
      // Redis answered the lease too late to call within it: back to the queue, not an attempt.
      if (call === 'late') return later(id, started, attempts, job, token, PAUSED_RECHECK_MS);
      if (call === 'unreplicated') {
        logFailure(
          logger,
          'warn',
          { request: id },
          new Error("NOREPLICAS a call's claim is not on enough replicas"),
          'call held',
        );
        return later(id, started, attempts, job, token, PAUSED_RECHECK_MS);
      }
      if (call === 'cancelled') {
        await store.cancelWithBatch(id, started, attempts);
        return undefined;
      }
      if ('laterMs' in call) return later(id, started, attempts, job, token, call.laterMs + Math.random() * 200);
      const { t0, latencyMs, reservation } = call;
      if (call.ok) {
        const { reply } = call;
        attempts.push({ at: t0, status: reply.status, code: 'ok', ms: latencyMs });
        const usage = usageOf(reply.completion);
        const price =
          findPrice(deps.prices, started.model) ?? findPrice(deps.prices, String(reply.completion.model ?? ''));
        const cost = costNano(price, usage);
        await limiter.settle(reservation, usage.total_tokens, true);
        return store.finish(
          id,
          started,
          {
            status: 'succeeded',
            response: reply.completion,
            httpStatus: reply.status,
            upstreamRequestId: reply.requestId,
            latencyMs,
            usage,
            costNano: cost,
            attempts,
            ...(started.expect ? { grade: grade(started.expect, replyText(reply.completion), latencyMs) } : {}),
            ...(started.history === 'full' ? { conversation: [...messages, assistantMessage(reply.completion)] } : {}),
          },
          servingJob(),
        );
      }
      const { err } = call;
      const c = err instanceof UpstreamBodyError ? err.classified : classifyError(err);
      attempts.push({ at: t0, status: c.status, code: c.code, ms: latencyMs });
      const error = {
        code: c.code,
        message: redact(c.message, deps.secrets),
        ...(c.status ? { status: c.status } : {}),
      };
      // The pause goes up before this call's credentials probe is released: no waiting call may take the probe and
      // call with credentials just refused.
      if (c.action === 'pause')
        await pauseQueue(deps.queues, deps.redis, deps.keys, { code: c.code, message: error.message, at: Date.now() });
      await limiter.settle(reservation, 0, false);
      if (c.action === 'rate_limited') {
        // The upstream's own limit: everyone waits, and this call does not count as an attempt.
        const waitMs = c.retryAfterMs ?? deps.defaultRateLimitWaitMs ?? 1_000;
        logger.warn({ request: id, waitMs }, 'upstream answered 429: pausing all workers');
        await Promise.all([limiter.pauseFor(waitMs), deps.redis.hincrby(deps.keys.metrics, 'upstream_429', 1)]);
        continue;
      }
      if (c.action === 'unavailable' && Date.now() - outageSince(attempts) < deps.maxOutageMs) {
        // An outage is nobody's attempt: everyone backs off together until a call gets through, and this request goes again.
        const waitMs = await limiter.noteOutage();
        logger.warn({ request: id, waitMs }, 'upstream unreachable: all workers back off');
        continue;
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
      return finishFailed(id, started, c, attempts, messages, servingJob());
    }
  }

  /**
   * A job serves its lane: its own request, then (within a short time slice, so that other lanes waiting for a slot
   * are not held up) the lane's next ones, without a BullMQ job per turn.
   */
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
    for (let started = first; started; ) started = await runRequest(started, job, token, servingJob);
  };
}
