import { describe, it } from 'vitest';
import { waitFor } from '../helpers/test-env.js';
import { conversationLines, expectInvariants, useNetWorld } from '../helpers/net-world.js';

describe('network: a worker started while Redis does not answer yet', () => {
  const w = useNetWorld({ latencyMs: 20 });

  it('waits for its first connection (a lost SYN is not "cannot reach Redis") and then works', async () => {
    const submitted = await w.env.submit(conversationLines(5, 2, 'start'));
    const host = await w.lab.host('worker');
    await host.cut(w.redisHost.ip);
    w.chatq(host, ['worker'], { CHATQ_BASE_URL: w.sim.url });
    // Its first packets are dropped (the process may take a while to start), and the next ones for 1.5 s more.
    await waitFor('the worker trying to connect', async () => (await host.dropped()) > 0, 30_000, 50);
    await new Promise((r) => setTimeout(r, 1_500));
    await host.heal();
    await w.waitForBatch(submitted.batchId, 60_000);
    await expectInvariants(w, submitted.batchId, 10);
  });
});
