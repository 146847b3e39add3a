import { DelayedError, type Job } from 'bullmq';
import {
  addSpend,
  afterFailedCall,
  finishRun,
  finishSucceeded,
  NO_SPEND,
  settleBestEffort,
  spendOf,
} from './call-outcomes.js';
import { gradingNotCalled, JUDGE_REASKS, unreadableVerdict } from './judge-calls.js';
import { type ProcessorDeps, RetryLaterError } from './processor-deps.js';
import { messagesFor, redact, ZERO_USAGE } from './call-results.js';
import { describeRedisError } from '../../shared/redis/redis-errors.js';
import { logFailure } from '../../shared/redis/condition-log.js';
import { costNano, findPrice } from '../../shared/usage/pricing.js';
import type { AttemptEntry } from '../../shared/request-record.js';
import { estimatePromptTokens, replyBound } from '../../shared/token-bounds.js';
import type { StartedRequest } from '../store/request-claims.js';
import { traceRun, type RunTrace } from './run-trace.js';
import { callWithinSlot, redisAway } from './call-within-slot.js';

const PAUSED_RECHECK_MS = 1_000;
/** How soon a call held for its shard's replicas (CHATQ_REDIS_WAIT_REPLICAS) asks again: they may be back any moment. */
const UNREPLICATED_RECHECK_MS = 500;
/** Calls one run makes that end in a 429 or find the upstream unreachable, before it gives its request back. */
const MAX_ROUNDS = 20;
/** How soon a request whose batch budget is all reserved by calls in flight asks again. */
const BUDGET_RECHECK_MS = 300;
const STOPPED = 'not judged: the batch stopped';
/**
 * The least a call that found no room waits in its backlog: its job must have ended before a refill adds it again
 * (an add whose job still exists is a no-op, and the head would be left without one until the reconciler's pass).
 */
const MIN_DEFER_MS = 250;

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
    if (err instanceof DelayedError || err instanceof RetryLaterError || describeRedisError(err)) throw err;
    return unexpectedFailure(deps, started, err, servingJob());
  }
}

/**
 * An error nothing expected (a defect, in chatq or beyond): it counts as a failed attempt of the request, so that
 * one that happens every time (after the call: a paid call each time) ends the request "failed" at CHATQ_MAX_ATTEMPTS
 * with its reason, instead of running it for ever.
 */
async function unexpectedFailure(
  deps: ProcessorDeps,
  started: StartedRequest,
  err: unknown,
  servingJob: string,
): Promise<StartedRequest | undefined> {
  const message = redact(
    `unexpected error in the worker: ${err instanceof Error ? err.message : String(err)}`,
    deps.secrets,
  );
  logFailure(deps.logger, 'error', { request: started.id }, err, 'run failed unexpectedly');
  const error = { code: 'internal_error', message };
  if (started.attempt < deps.maxAttempts) {
    await deps.store.retry(started.id, started, [], error);
    throw new RetryLaterError(`internal_error: ${message}`, started.attempt);
  }
  return finishRun(
    deps,
    started,
    { status: 'failed', error, usage: ZERO_USAGE, costNano: 0, attempts: [] },
    servingJob,
  );
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
  // A grading of a batch that stopped is not called: the request it judges stays ungraded.
  const unjudged = (code: string, message: string) =>
    finishRun(deps, started, gradingNotCalled(started, code, message), servingJob());
  const away = redisAway(deps, id);
  const goesOn = started.judges ? await deps.store.stops.batchGoesOn(started.batch).catch(away) : true;
  if (goesOn === 'redis_away') return back(PAUSED_RECHECK_MS);
  if (!goesOn) return unjudged('cancelled', STOPPED);
  if (started.budgeted) {
    const budget = await deps.store
      .reserveBudget(id, started, costBound(deps, started.model, body, promptTokens()))
      .catch(away);
    if (budget === 'redis_away') return back(PAUSED_RECHECK_MS);
    if (budget === 'wait') return back(BUDGET_RECHECK_MS);
    if (budget === 'never') {
      if (started.judges)
        return unjudged('budget_exceeded', 'not judged: it could take the batch past its max_cost_usd');
      await deps.store.stops.cancelOverBudget(id, started);
      return undefined;
    }
  }
  let spent = NO_SPEND;
  // Rounds of 429s or of an unreachable upstream (no attempt spent): past MAX_ROUNDS the request goes back in line.
  let reasks = 0;
  for (let rounds = 0; ; rounds++) {
    if (rounds >= MAX_ROUNDS) return back(PAUSED_RECHECK_MS);
    const call = await callWithinSlot(deps, started, body, promptTokens, t, away);
    // Paused while waiting (bad key, no balance...) or the worker is stopping: back to the queue, not an attempt.
    if (call === 'paused') return back(PAUSED_RECHECK_MS);
    // Another run holds the request now (this one's lock lapsed): it is that run's to call and finish.
    if (call === 'taken') return undefined;
    // Redis answered the lease too late to call within it, or failed before the call: back to the queue, no attempt.
    if (call === 'late' || call === 'redis_away') return back(PAUSED_RECHECK_MS);
    if (call === 'unreplicated') {
      const err = new Error("NOREPLICAS a call's claim is not on enough replicas");
      logFailure(deps.logger, 'warn', { request: id }, err, 'call held');
      return back(UNREPLICATED_RECHECK_MS);
    }
    // One whose batch is being cancelled ends now; a call with no room yet waits out of the call slots.
    if (call === 'cancelled') {
      if (started.judges) return unjudged('cancelled', STOPPED);
      await deps.store.stops.cancelWithBatch(id, started, attempts);
      return undefined;
    }
    // No room yet: it waits in its project's backlog, out of BullMQ (its job ends); spread out, so that the calls
    // told the same time do not all ask again at once.
    if ('laterMs' in call) {
      await deps.store.defer(
        id,
        started,
        attempts,
        Math.max(MIN_DEFER_MS, call.laterMs) + Math.random() * Math.min(1_000, Math.max(200, call.laterMs)),
      );
      return undefined;
    }
    if (call.ok && unreadableVerdict(started, call.reply.completion) && reasks < JUDGE_REASKS) {
      // A judge that did not answer the JSON asked for is asked again; its call is paid and counted with the next.
      reasks += 1;
      attempts.push({ at: call.t0, status: call.reply.status, code: 'judge_unreadable', ms: call.latencyMs });
      const own = spendOf(deps, started, call.reply.completion);
      spent = addSpend(spent, own);
      await settleBestEffort(deps, call.reservation, own.usage.total_tokens, true);
      continue;
    }
    const run = { deps, started, attempts, messages, servingJob: servingJob(), t };
    if (call.ok) return finishSucceeded(run, call, spent);
    const next = await afterFailedCall(run, call);
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
    let project: string | undefined;
    // Past its slice, the job goes on with the lane only while no other job waits for a slot (the finish script asks;
    // also while another project waits, unless this one holds less than its share of the slots: "+").
    const servingJob = () =>
      limiter.stopping || deps.laneSliceMs === 0
        ? ''
        : Date.now() - since >= deps.laneSliceMs
          ? `?${job.id!}`
          : deps.projectSlots.withinShare(project!)
            ? `+${job.id!}`
            : job.id!;
    const first = await store.start(job.id!);
    if (first && 'stoppedBatch' in first) {
      // Its batch stopped (cancelled, expired, import failed): not sent, cancelled with the rest of the batch.
      await store.stops.cancelStopped(first);
      return;
    }
    if (first && 'waitMs' in first) {
      // A turn gap: the user's previous call ended too recently. The job waits delayed, holding no slot.
      await job.moveToDelayed(Date.now() + first.waitMs, token);
      throw new DelayedError();
    }
    if (!first) return;
    // Each run's result claims the lane's next request for this job, in the same round trip (within the slice).
    project = first.project;
    deps.projectSlots.enter(project);
    try {
      for (let started: StartedRequest | undefined = first; started; )
        started = await runRequest(deps, started, job, token, servingJob);
    } finally {
      deps.projectSlots.leave(project);
    }
  };
}
