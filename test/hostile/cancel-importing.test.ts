import { PassThrough } from 'node:stream';
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { submitBatch } from '../../src/producer/submit-batch.js';
import { loadPrices } from '../../src/shared/usage/pricing.js';
import { batchEnded, chatLines, createBatch } from '../helpers/api-batches.js';
import { useApi, useWorld } from '../helpers/in-process-worker.js';
import { waitFor } from '../helpers/test-env.js';

const TOKEN = 'tok-cancel-importing';
const CONCURRENCY = 10;

describe('a cancel while the batch is still being imported', () => {
  const w = useWorld({ latencyMs: 30 });
  const a = useApi(w, { CHATQ_API_TOKENS: `alpha:${TOKEN}` });

  it('stops its calls at once: no call starts after the cancel is answered, and the import stops', async () => {
    const client = new OpenAI({ baseURL: `${a.api.url}/v1`, apiKey: TOKEN, maxRetries: 0 });
    // A warm worker (its credentials proven by a first batch), as in a running deployment.
    await w.startWorker({ CHATQ_CONCURRENCY: String(CONCURRENCY) });
    const warm = await batchEnded(client, (await createBatch(client, chatLines(1))).id);
    const warmCalls = w.sim.stats().calls;
    // An import that is still reading its input (a slow source): 2,000 lines at once, then 50 more every 20 ms.
    const source = new PassThrough();
    const lines = chatLines(200_000, (i) => ({ user: `user-${i % 5_000}` }));
    source.write(`${lines.slice(0, 2_000).join('\n')}\n`);
    let sent = 2_000;
    const trickle = setInterval(() => {
      if (sent >= lines.length) return source.end();
      source.write(`${lines.slice(sent, sent + 50).join('\n')}\n`);
      sent += 50;
    }, 20);
    const { redis, keys, queues } = w.env;
    const importing = submitBatch(
      { redis, keys, queues, resultTtlS: 3600, prices: loadPrices(), userids: { secret: undefined, holdS: 0 } },
      () => source,
      {
        source: 'slow.jsonl',
        project: 'alpha',
      },
    );
    try {
      const batchId = await waitFor('the batch', async () => {
        const [latest] = await redis.zrange(keys.projectBatches('alpha'), -1, -1);
        return latest !== warm.id && latest;
      });
      await waitFor(
        'calls of the batch while it is imported',
        async () => w.sim.stats().calls >= warmCalls + 5,
        30_000,
        5,
      );
      const cancelling = await client.batches.cancel(batchId);
      const callsAtCancel = w.sim.stats().calls;
      expect(cancelling.status).toBe('cancelling');
      // The import stops with the cancel, before the end of its input.
      expect((await importing).status).toBe('cancelled');
      expect(sent).toBeLessThan(lines.length);
      const ended = await batchEnded(client, batchId);
      expect(ended.status).toBe('cancelled');
      // Only the calls in flight when the cancel came finished; none started after it.
      expect(w.sim.stats().calls - callsAtCancel).toBeLessThanOrEqual(CONCURRENCY);
      expect(ended.request_counts!.completed).toBeLessThanOrEqual(callsAtCancel - warmCalls + CONCURRENCY);
    } finally {
      clearInterval(trickle);
      source.end();
    }
  });
});
