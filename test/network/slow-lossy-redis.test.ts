import { describe, expect, it } from 'vitest';
import { delayProxy } from '../helpers/delay-proxy.js';
import { conversationLines, expectInvariants, useNetWorld } from '../helpers/net-world.js';

describe('network (c): 20 ms round trip and 5 % packet loss between workers and Redis', () => {
  const w = useNetWorld({ latencyMs: 300, jitterMs: 100 });

  it('loses nothing, counts each request once, keeps every user in order', async () => {
    const users = 20;
    const turns = 5;
    const submitted = await w.env.submit(conversationLines(users, turns, 'lossy'));
    const proxy = await delayProxy(w.lab.gateway, { host: w.redisHost.ip, port: 6379 }, 10);
    try {
      const hosts = [await w.lab.host('worker1'), await w.lab.host('worker2')];
      for (const host of hosts) {
        await host.loss(w.lab.gateway, 0.05, { port: proxy.port });
        w.chatq(host, ['worker'], {
          REDIS_URL: `redis://${proxy.host}:${proxy.port}`,
          CHATQ_BASE_URL: w.sim.url,
          CHATQ_CONCURRENCY: '20',
          CHATQ_TIMEOUT_MS: '10000',
        });
      }
      await w.waitForBatch(submitted.batchId, 120_000);
      for (const host of hosts) expect(await host.dropped()).toBeGreaterThan(0);
      await expectInvariants(w, submitted.batchId, users * turns);
    } finally {
      await proxy.close();
    }
  });
});
