import { describe, expect, it } from 'vitest';
import { readBatchRequests } from '../src/shared/batches/read-store.js';
import type { StoredRequest } from '../src/shared/request-record.js';
import { legacyUserid } from '../src/shared/userid.js';
import { waitForBatch } from './helpers/test-env.js';
import { useWorld } from './helpers/in-process-worker.js';

const USERS = 60;
const TURNS = 10;

describe('upstream faults', () => {
  const w = useWorld({
    latencyMs: 5,
    jitterMs: 5,
    timeoutHoldMs: 2_000,
    faults: { error5xx: 0.1, rateLimit429: 0.05, timeout: 0.02, malformed: 0.01, retryAfterMs: 30 },
  });

  it('retries 5xx, 429 (with retry-after), timeouts and malformed bodies until every request succeeds, in order', async () => {
    const lines: string[] = [];
    for (let t = 0; t < TURNS; t++) {
      for (let u = 0; u < USERS; u++) {
        lines.push(
          JSON.stringify({
            custom_id: `u${u}-t${t}`,
            user: `u${u}`,
            model: 'gpt-4o-mini',
            messages: [{ role: 'user', content: `[seq ${t}] hello` }],
          }),
        );
      }
    }
    const submitted = await w.env.submit(lines);
    await w.startWorker({
      CHATQ_CONCURRENCY: '40',
      CHATQ_MAX_ATTEMPTS: '10',
      CHATQ_BACKOFF_MS: '20',
      CHATQ_TIMEOUT_MS: '400',
    });
    const batch = await waitForBatch(w.env, submitted.batchId);
    expect(batch).toMatchObject({ succeeded: USERS * TURNS, failed: 0 });

    const stats = w.sim.stats();
    // Every kind of fault really happened.
    expect(stats.injected.error5xx).toBeGreaterThan(0);
    expect(stats.injected.rateLimit429).toBeGreaterThan(0);
    expect(stats.injected.timeout).toBeGreaterThan(0);
    expect(stats.injected.malformed).toBeGreaterThan(0);
    expect(stats.overlaps).toBe(0);
    expect(stats.outOfOrder).toBe(0);

    const requests: StoredRequest[] = [];
    for await (const r of readBatchRequests(w.env.redis, w.env.keys, submitted.batchId)) requests.push(r);
    // The attempts recorded on the requests are the calls the upstream saw, user by user; beyond them only calls the
    // worker gave up on (its timeout) before the upstream had them (a loaded machine: the 400 ms passed on the way),
    // none of which is one the simulator held on purpose.
    const timeoutsOf = (rs: StoredRequest[]) =>
      rs.flatMap((r) => r.attemptLog).filter((a) => a.code === 'timeout').length;
    const attempts = requests.reduce((a, r) => a + r.attempts, 0);
    expect(attempts).toBeGreaterThanOrEqual(stats.calls);
    expect(attempts - stats.calls).toBeLessThanOrEqual(timeoutsOf(requests) - stats.injected.timeout);
    for (let u = 0; u < USERS; u++) {
      const mine = requests.filter((r) => r.customId.startsWith(`u${u}-`));
      const seen = stats.users[legacyUserid(`u${u}`)]!.calls;
      expect(mine.reduce((a, r) => a + r.attempts, 0)).toBeGreaterThanOrEqual(seen);
      expect(mine.reduce((a, r) => a + r.attempts, 0) - seen).toBeLessThanOrEqual(timeoutsOf(mine));
    }
    // Each attempt is in the request's history, and 429 waits were not counted against CHATQ_MAX_ATTEMPTS.
    for (const r of requests) {
      expect(r.attemptLog).toHaveLength(r.attempts);
      expect(r.attemptLog.at(-1)!.code).toBe('ok');
      expect(r.attemptLog.filter((a) => a.code !== 'rate_limited').length).toBeLessThanOrEqual(10);
    }
    const codes = new Set(requests.flatMap((r) => r.attemptLog.map((a) => a.code)));
    expect([...codes].sort()).toEqual(['http_503', 'malformed_response', 'ok', 'rate_limited', 'timeout']);
  });
});
