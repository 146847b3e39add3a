import { describe, expect, it } from 'vitest';
import { getRequests } from '../src/shared/batches/read-store.js';
import { describeRedisError } from '../src/shared/redis/redis-errors.js';
import { LuaScript } from '../src/shared/redis/redis.js';
import { jobBackoff } from '../src/worker/job-fetchers.js';
import { RetryLaterError } from '../src/worker/run/processor-deps.js';
import { type FaultRule, startFaultProxy } from './helpers/fault-proxy.js';
import { useWorld } from './helpers/in-process-worker.js';
import { REDIS_URL, waitFor, waitForBatch } from './helpers/test-env.js';

const chat = (id: string, user: string, content: string) =>
  JSON.stringify({ custom_id: id, user, model: 'gpt-4o-mini', max_tokens: 20, messages: [{ role: 'user', content }] });

describe("the worker's error paths", () => {
  const w = useWorld({ latencyMs: 10 });

  it('a MULTI error that names itself among its causes is described, not recursed into for ever', () => {
    const err = Object.assign(new Error('EXECABORT Transaction discarded because of previous errors.'), {
      previousErrors: [] as unknown[],
    });
    err.previousErrors.push(err);
    expect(() => describeRedisError(err)).not.toThrow();
    const dead = Object.assign(new Error('Connection is closed.'), { previousErrors: [] as unknown[] });
    dead.previousErrors.push(dead);
    expect(describeRedisError(dead)).toMatchObject({ code: 'redis_unavailable' });
  });

  it("a retry waits by the request's own tries, not by the failures of the job that serves its lane", () => {
    const later = Object.assign(new RetryLaterError('server_error: 500'), { tries: 1 });
    // The job has failed 9 times for earlier requests of its lane: this request's first retry still waits ~the base.
    for (let i = 0; i < 20; i++) expect(jobBackoff(9, later, 100)).toBeLessThanOrEqual(200);
    expect(jobBackoff(9, Object.assign(new RetryLaterError('x'), { tries: 4 }), 100)).toBeGreaterThanOrEqual(400);
  });

  /**
   * One request through a worker whose Redis is behind a fault proxy, `fault` added once the worker is up (its
   * scripts loaded); `body` checks what came of it, and the worker and the proxy are closed whatever happened.
   */
  async function oneRequestVia(
    env: Record<string, string>,
    fault: () => FaultRule,
    body: (ended: {
      done: Awaited<ReturnType<typeof waitForBatch>>;
      id: string;
      fired: number;
    }) => Promise<void> | void,
    opts: { maxCostNano?: number } = {},
  ): Promise<void> {
    const proxy = await startFaultProxy({ host: '127.0.0.1', port: Number(new URL(REDIS_URL).port || 6379) });
    try {
      await w.startWorker({ REDIS_URL: proxy.url, ...env });
      proxy.add(fault());
      const batch = await w.env.submit([chat('r1', 'solo', 'hello')], opts);
      const done = await waitForBatch(w.env, batch.batchId, 30_000);
      await body({ done, id: `${batch.batchId}-1`, fired: proxy.fired() });
    } finally {
      await w.pool?.close();
      await proxy.close();
    }
  }
  /** Redis answers the error `message` to the script `name`, `times` times. */
  const scriptError = (name: string, message: string, times = 1): FaultRule => ({
    command: 'EVALSHA',
    arg: LuaScript.loaded.find((s) => s.name === `chatq_${name}`)!.sha,
    fault: 'error',
    message,
    times,
  });

  it('an unexpected error after the call counts as a try: at CHATQ_MAX_ATTEMPTS the request ends failed, saying why', async () => {
    await oneRequestVia(
      { CHATQ_MAX_ATTEMPTS: '2', CHATQ_BACKOFF_MS: '50' },
      // Writing this request's result fails twice with an error no Redis sends (a defect, in the worker or beyond).
      () => scriptError('finish_request', 'CHATQTEST unexpected', 2),
      async ({ done, id }) => {
        expect(done).toMatchObject({ failed: 1, succeeded: 0 });
        const [r] = await getRequests(w.env.redis, w.env.keys, [id]);
        expect(r!.error).toMatchObject({
          code: 'internal_error',
          message: expect.stringMatching(/CHATQTEST unexpected/),
        });
        // Two tries: two calls, not one per failure for ever.
        expect(w.sim.stats().calls).toBe(2);
      },
    );
  });

  it('a read Redis does not answer in time is Redis away, not a defect: it spends no attempt of the request', async () => {
    await oneRequestVia(
      { CHATQ_MAX_ATTEMPTS: '1', CHATQ_BACKOFF_MS: '50' },
      // The first reads of the upstream gate (the first call of a worker must wait for one) go unanswered past their
      // bound; with one attempt allowed, a request that counted that as a failure would end failed.
      () => ({ command: 'EXISTS', anyArg: w.env.keys.pauseReason, fault: 'hold', holdMs: 1_500, times: 2 }),
      ({ done, fired }) => {
        expect(fired).toBeGreaterThanOrEqual(1);
        expect(done).toMatchObject({ succeeded: 1, failed: 0 });
      },
    );
  });

  it("a Redis error at the budget's reservation (before the call) gives the request back at once: its lane waits no lease out", async () => {
    await oneRequestVia(
      // The claim took the user's call lease (the call timeout and a margin: 62 s here); a run that left it standing
      // would hold the lane past the batch's wait (30 s).
      { CHATQ_MAX_ATTEMPTS: '1', CHATQ_TIMEOUT_MS: '60000' },
      () => scriptError('reserve_budget', 'TRYAGAIN Multiple keys request during rehashing of slot'),
      ({ done, fired }) => {
        expect(fired).toBe(1);
        expect(done).toMatchObject({ succeeded: 1, failed: 0 });
      },
      { maxCostNano: 1e12 },
    );
  });

  it('past CHATQ_MAX_OUTAGE_MS an unreachable upstream counts as failed attempts, up to CHATQ_MAX_ATTEMPTS', async () => {
    w.sim.configure({ down: true });
    await w.startWorker({ CHATQ_MAX_OUTAGE_MS: '300', CHATQ_MAX_ATTEMPTS: '3', CHATQ_BACKOFF_MS: '50' });
    const batch = await w.env.submit([chat('r1', 'solo', 'hello')]);
    const done = await waitForBatch(w.env, batch.batchId, 60_000);
    expect(done.failed).toBe(1);
    const [r] = await getRequests(w.env.redis, w.env.keys, [`${batch.batchId}-1`]);
    // Three runs, each ended by a counted failed attempt (one run's outage rounds are not counted).
    expect(r!.claims).toBe(3);
    expect(r!.error).toMatchObject({ code: 'connection_error' });
  });

  it('a run of 429s gives the request back to the queue after a bounded number of rounds, and its attempt log stays bounded', async () => {
    w.sim.configure({ faults: { rateLimit429: 1, retryAfterMs: 1 } });
    await w.startWorker();
    const batch = await w.env.submit([chat('r1', 'solo', 'hello')]);
    const id = `${batch.batchId}-1`;
    await waitFor('a hundred 429 rounds', async () => w.sim.stats().calls >= 100, 30_000);
    w.sim.configure({ faults: { rateLimit429: 0 } });
    await waitForBatch(w.env, batch.batchId, 60_000);
    const [r] = await getRequests(w.env.redis, w.env.keys, [id]);
    expect(r!.attemptLog.length).toBeLessThanOrEqual(100);
    expect(r!.status).toBe('succeeded');
  });

  it('a worker whose Redis went away ends its shutdown within the call timeout and a margin, and says what it left', async () => {
    const proxy = await startFaultProxy({ host: '127.0.0.1', port: Number(new URL(REDIS_URL).port || 6379) });
    w.sim.configure({ latencyMs: 2_000 });
    const pool = await w.startWorker({ REDIS_URL: proxy.url, CHATQ_TIMEOUT_MS: '3000' });
    await w.env.submit([chat('r1', 'solo', 'hello')]);
    await waitFor('the call under way', async () => w.sim.stats().calls >= 1, 30_000);
    // Redis goes away for the worker, with its call in flight, and it is asked to stop.
    await proxy.close();
    const stopped = pool.close().then(() => 'stopped');
    const bound = new Promise((r) => setTimeout(() => r('still running'), 3_000 + 5_000 + 2 * 2_000 + 1_000));
    expect(await Promise.race([stopped, bound])).toBe('stopped');
  });
});
