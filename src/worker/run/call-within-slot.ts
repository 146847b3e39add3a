import { describeRedisError } from '../../shared/redis/redis-errors.js';
import { logFailure } from '../../shared/redis/condition-log.js';
import { isReservation } from '../capacity/capacity-limiter.js';
import type { StartedRequest } from '../store/request-claims.js';
import { settleBestEffort } from './call-outcomes.js';
import { callEnd, failedCallEnd } from './call-results.js';
import type { CallOutcome, ProcessorDeps } from './processor-deps.js';
import type { RunTrace } from './run-trace.js';

/** A call's lease taken longer than this after its request slot is not used: the call would come too late for it. */
const LATE_SLOT_MS = 1_000;

/**
 * A Redis error before the call was sent (the batch's state or budget, a read of the gate or of capacity, the lease's
 * script) leaves nothing at the upstream: the run gives its request back at once, rather than leave the user's call
 * lease (taken with the claim) to lapse. Logged once a condition per 30 s (condition-log.ts); other errors go on.
 */
export function redisAway(deps: ProcessorDeps, id: string): (err: unknown) => 'redis_away' {
  return (err) => {
    if (!describeRedisError(err)) throw err;
    logFailure(deps.logger, 'warn', { request: id }, err, 'given back before its call');
    return 'redis_away';
  };
}

/**
 * Within one call slot (so that no more than CHATQ_CONCURRENCY calls are in flight while a few extra jobs stand ready
 * to take a slot the moment one frees): waits for capacity, takes the call's lease (its deadline goes on the request
 * before it is sent, and the call ends by then), and calls. Or why it did not call (`away` meets a Redis error before
 * the call).
 */
export function callWithinSlot(
  deps: ProcessorDeps,
  started: StartedRequest,
  body: Record<string, unknown>,
  promptTokens: () => number,
  t: RunTrace,
  away: (err: unknown) => 'redis_away',
) {
  const { store, limiter } = deps;
  // A shard whose replicas do not acknowledge claims holds no call slot: one call each half second asks them again.
  if (store.waitsForReplicas()) return Promise.resolve('unreplicated' as const);
  return deps.callSlots(async () => {
    const reservation = await t
      .capacityWait(() =>
        limiter.acquire(started.model, body, {
          project: started.project,
          promptTokens,
          stillWanted: () => store.stops.batchGoesOn(started.batch),
        }),
      )
      .catch(away);
    if (!isReservation(reservation)) return reservation;
    const reservedAt = performance.now();
    // No call is made without its lease; the capacity reserved for it is given back, whatever went wrong.
    const lease = await store.beginCall(started, deps.timeoutMs).catch(async (err: unknown) => {
      await settleBestEffort(deps, reservation, 0, false);
      return away(err);
    });
    // A lease that came long after the request slot (its master stopped meanwhile) would send the call into a later
    // stretch of the minute than the one its slot was in: it goes back for a slot of its own time.
    const callMs = typeof lease === 'number' && performance.now() - reservedAt > LATE_SLOT_MS ? 'late' : lease;
    if (typeof callMs !== 'number') {
      await settleBestEffort(deps, reservation, 0, false);
      return callMs;
    }
    const t0 = Date.now();
    const span = t.call(started.model, body, started.attempt);
    try {
      // A grading goes to the judge's upstream, without userid: it must never touch a user's memory.
      const reply = started.judges
        ? await deps.judge.upstream.chat(body, undefined, callMs)
        : await deps.upstream.chat(body, started.userid, callMs);
      span?.end(callEnd(reply));
      return { ok: true, reply, t0, latencyMs: Date.now() - t0, reservation } satisfies CallOutcome;
    } catch (err) {
      span?.end(failedCallEnd(err));
      return { ok: false, err, t0, latencyMs: Date.now() - t0, reservation } satisfies CallOutcome;
    }
  });
}
