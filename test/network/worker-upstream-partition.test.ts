import { describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/test-env.js';
import { conversationLines, expectInvariants, useNetWorld } from '../helpers/net-world.js';

describe('network (b): a worker and the upstream apart', () => {
  const w = useNetWorld({ latencyMs: 1_000, jitterMs: 200 });

  it('rides out the outage (calls time out, nobody fails) and resumes with the first call that gets through', async () => {
    const users = 10;
    const turns = 3;
    const submitted = await w.env.submit(conversationLines(users, turns, 'up'));
    const host = await w.lab.host('worker');
    w.chatq(host, ['worker'], { CHATQ_BASE_URL: w.sim.url, CHATQ_TIMEOUT_MS: '3000', CHATQ_CONCURRENCY: '20' });
    await waitFor(
      'calls in flight',
      async () => Object.values(w.sim.stats().users).some((u) => u.inFlight > 0),
      30_000,
      20,
    );
    await host.cut(w.lab.gateway, { port: Number(new URL(w.sim.url).port) });
    await new Promise((r) => setTimeout(r, 15_000));
    expect(await host.dropped()).toBeGreaterThan(0);
    const healedAt = Date.now();
    await host.heal();
    await w.waitForBatch(submitted.batchId, 120_000);
    await expectInvariants(w, submitted.batchId, users * turns);
    // The outage's backoff ended with the first call that got through: no wait for a backoff grown over the outage
    // (15 s of failures), the first call after the heal within a third of it.
    const firstAfterHeal = Math.min(
      ...Object.values(w.sim.stats().arrivalsFrom)
        .flat()
        .filter((t) => t >= healedAt),
    );
    expect(firstAfterHeal - healedAt).toBeLessThan(5_000);
    expect(await w.env.redis.exists(w.env.keys.outage, w.env.keys.outageUntil)).toBe(0);
  });
});
