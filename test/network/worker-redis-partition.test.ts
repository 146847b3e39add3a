import { describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/test-env.js';
import { conversationLines, expectInvariants, useNetWorld } from '../helpers/net-world.js';

describe('network (a): a worker and Redis apart for longer than the lock while its calls run', () => {
  // Calls of 4-12 s; the lock lapses after 3 s, so the cut-off worker's jobs look stalled to the other worker.
  const w = useNetWorld({ latencyMs: 8_000, jitterMs: 4_000 });

  it('keeps each user to one call at a time, in order, each request counted once', async () => {
    const users = 10;
    const turns = 2;
    const submitted = await w.env.submit(conversationLines(users, turns, 'part'));
    const vars = {
      CHATQ_LOCK_MS: '3000',
      CHATQ_TIMEOUT_MS: '15000',
      CHATQ_RECONCILE_MS: '500',
      CHATQ_CONCURRENCY: '20',
      CHATQ_LANE_SLICE_MS: '0',
      CHATQ_BASE_URL: w.sim.url,
    };
    const [first, second] = [await w.lab.host('worker1'), await w.lab.host('worker2')];
    w.chatq(first, ['worker'], vars);
    await waitFor(
      'the first worker calls every user',
      async () => Object.values(w.sim.stats().users).filter((u) => u.inFlight > 0).length >= users,
      30_000,
      20,
    );
    await first.cut(w.redisHost.ip);
    w.chatq(second, ['worker'], vars);
    await new Promise((r) => setTimeout(r, 20_000));
    expect(await first.dropped()).toBeGreaterThan(0);
    await first.heal();
    await w.waitForBatch(submitted.batchId, 120_000);
    await expectInvariants(w, submitted.batchId, users * turns);
  });
});
