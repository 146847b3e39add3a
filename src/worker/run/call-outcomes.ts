import { assistantMessage, classified, outageSince, redact, usageOf, ZERO_USAGE } from './call-results.js';
import type { Usage } from '../../shared/usage/pricing.js';
import type { FinishedRequest } from '../store/request-claims.js';
import { gradingDraft, withJudgement } from './judge-calls.js';
import { costNano, findPrice } from '../../shared/usage/pricing.js';
import { pauseQueue } from '../../shared/redis/queue-control.js';
import { upstreamFields, type AttemptEntry } from '../../shared/request-record.js';
import { grade, replyText } from '../../shared/expectations.js';
import { failureReason, type ClassifiedError } from '../upstream/classify-error.js';
import type { StartedRequest } from '../store/request-claims.js';
import type { RunTrace } from './run-trace.js';
import { type CallOutcome, type ProcessorDeps, RetryLaterError } from './processor-deps.js';
import type { Reservation } from '../capacity/capacity-limiter.js';
import { logFailure } from '../../shared/redis/condition-log.js';

/** What a call's end leads to: the request finished (succeeded or failed), retried later, or called again. */

/** Writes a run's result; a grading's carries its verdict into the request it judges. */
export function finishRun(
  deps: ProcessorDeps,
  started: StartedRequest,
  result: FinishedRequest,
  servingJob: string,
): Promise<StartedRequest | undefined> {
  return deps.store.finish(started.id, started, withJudgement(started, result), servingJob);
}

/** What calls of this run spent before the one that finishes it (a judge asked again): added to its usage and cost. */
export interface EarlierSpend {
  usage: Usage;
  costNano: number | undefined;
}

const addUsage = (a: Usage, b: Usage): Usage => ({
  prompt_tokens: a.prompt_tokens + b.prompt_tokens,
  completion_tokens: a.completion_tokens + b.completion_tokens,
  total_tokens: a.total_tokens + b.total_tokens,
  cached_tokens: a.cached_tokens + b.cached_tokens,
  reasoning_tokens: a.reasoning_tokens + b.reasoning_tokens,
});

/** `a` and `b` together (unpriced when either is). */
export const addSpend = (a: EarlierSpend, b: EarlierSpend): EarlierSpend => ({
  usage: addUsage(a.usage, b.usage),
  costNano: a.costNano === undefined || b.costNano === undefined ? undefined : a.costNano + b.costNano,
});

export const NO_SPEND: EarlierSpend = { usage: ZERO_USAGE, costNano: 0 };

/** One run of a request at the moment a call ended: what its outcome is written with. */
export interface CallRun {
  deps: ProcessorDeps;
  started: StartedRequest;
  /** The run's attempt entries so far (the call's is added). */
  attempts: AttemptEntry[];
  /** The messages the call sent. */
  messages: Record<string, unknown>[];
  /** The job that serves the request's lane now. */
  servingJob: string;
  t: RunTrace;
}

/** What a reply cost, at its model's price. */
export function spendOf(
  deps: ProcessorDeps,
  started: StartedRequest,
  completion: Record<string, unknown>,
): EarlierSpend {
  const usage = usageOf(completion);
  const price = findPrice(deps.prices, started.model) ?? findPrice(deps.prices, String(completion.model ?? ''));
  return { usage, costNano: costNano(price, usage) };
}

/** Ends a request failed (no more attempts, or an error not worth retrying), with its error redacted. */
function finishFailed(run: CallRun, c: ClassifiedError): Promise<StartedRequest | undefined> {
  const { deps, started, attempts, messages, servingJob, t } = run;
  return t.finish(() =>
    finishRun(
      deps,
      started,
      {
        status: 'failed',
        error: { code: c.code, message: redact(c.message, deps.secrets), ...(c.status ? { status: c.status } : {}) },
        failureReason: failureReason(c.code),
        upstream: upstreamFields({ status: c.status }),
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
export async function finishSucceeded(
  run: CallRun,
  call: Extract<CallOutcome, { ok: true }>,
  earlier: EarlierSpend = NO_SPEND,
): Promise<StartedRequest | undefined> {
  const { deps, started, attempts, messages, servingJob, t } = run;
  const { reply, t0, latencyMs, reservation } = call;
  attempts.push({ at: t0, status: reply.status, code: 'ok', ms: latencyMs });
  const own = spendOf(deps, started, reply.completion);
  const { usage, costNano: cost } = addSpend(earlier, own);
  const text = replyText(reply.completion);
  const g = started.expect ? grade(started.expect, text, latencyMs) : undefined;
  const grading = g && text !== null ? gradingDraft(deps, started, messages, text, g) : undefined;
  // The result first (it was paid for); the capacity after, whatever the write came to, best effort: a settle that
  // fails leaves the estimate in the token log until it ages out, never the reply unsaved.
  try {
    return await t.finish(() =>
      finishRun(
        deps,
        started,
        {
          status: 'succeeded',
          response: reply.completion,
          upstream: upstreamFields({ status: reply.status, requestId: reply.requestId, completion: reply.completion }),
          latencyMs,
          usage,
          costNano: cost,
          attempts,
          ...(g ? { grade: g } : {}),
          ...(grading ? { grading } : {}),
          ...(started.history === 'full' ? { conversation: [...messages, assistantMessage(reply.completion)] } : {}),
        },
        servingJob,
      ),
    );
  } finally {
    await settleBestEffort(deps, reservation, own.usage.total_tokens, true);
  }
}

/** Settles a call's capacity; a Redis error is logged (once per condition), not thrown: the call is over either way. */
export async function settleBestEffort(
  deps: ProcessorDeps,
  reservation: Reservation,
  tokens: number,
  succeeded: boolean,
): Promise<void> {
  try {
    await deps.limiter.settle(reservation, tokens, succeeded);
  } catch (err) {
    logFailure(deps.logger, 'warn', {}, err, 'capacity not settled (the estimate stays until it ages out)');
  }
}

/**
 * What a failed call leads to: 'again' (a 429 or an outage: everyone waits, and this request goes again without an
 * attempt spent), a retry later (BullMQ backoff), a paused queue, or the request finished failed.
 */
export async function afterFailedCall(
  run: CallRun,
  call: Extract<CallOutcome, { ok: false }>,
): Promise<'again' | StartedRequest | undefined> {
  const { deps, started, attempts } = run;
  const { store, limiter, logger } = deps;
  const { id } = started;
  const c = classified(call.err);
  attempts.push({ at: call.t0, status: c.status, code: c.code, ms: call.latencyMs });
  const error = { code: c.code, message: redact(c.message, deps.secrets), ...(c.status ? { status: c.status } : {}) };
  // The pause goes up before this call's credentials probe is released: no waiting call may take the probe and
  // call with credentials just refused.
  try {
    if (c.action === 'pause')
      await pauseQueue(deps.queues, deps.redis, deps.keys, { code: c.code, message: error.message, at: Date.now() });
  } finally {
    await settleBestEffort(deps, call.reservation, 0, false);
  }
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
    throw new RetryLaterError(`${c.code}: ${error.message}`, started.attempt);
  }
  // Past CHATQ_MAX_OUTAGE_MS an unreachable upstream counts as a failed attempt, as any retryable failure does.
  if ((c.action === 'retry' || c.action === 'unavailable') && started.attempt < deps.maxAttempts) {
    // A call that timed out may still be running at the upstream: its lease holds the user's next call until its deadline has passed.
    await store.retry(id, started, attempts, error, c.code === 'timeout');
    throw new RetryLaterError(`${c.code}: ${error.message}`, started.attempt);
  }
  return finishFailed(run, c);
}
