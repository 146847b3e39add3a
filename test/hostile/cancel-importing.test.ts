import OpenAI from 'openai';
import { batchEnded, chatLines, createBatch } from '../helpers/api-batches.js';
import { describe, expect, it } from 'vitest';
import { useApi, useWorld } from '../helpers/in-process-worker.js';
import { waitFor } from '../helpers/test-env.js';

const TOKEN = 'tok-cancel-importing';
const CONCURRENCY = 10;

describe('a cancel while the batch is still being imported', () => {
  const w = useWorld({ latencyMs: 30 });
  const a = useApi(w, { CHATQ_API_TOKENS: `alpha:${TOKEN}` });

  it('stops its calls at once: no call starts after the cancel is answered, and the import stops', async () => {
    const client = new OpenAI({ baseURL: `${a.api.url}/v1`, apiKey: TOKEN, maxRetries: 0 });
    // A warm worker (its credentials proven by a first batch), as in a running deployment; then a large import.
    await w.startWorker({ CHATQ_CONCURRENCY: String(CONCURRENCY) });
    await batchEnded(client, (await createBatch(client, chatLines(1))).id);
    const warmCalls = w.sim.stats().calls;
    const batch = await createBatch(
      client,
      chatLines(200_000, (i) => ({ user: `user-${i % 5_000}` })),
    );
    await waitFor(
      'calls of the batch while it is imported',
      async () => w.sim.stats().calls >= warmCalls + 5,
      30_000,
      5,
    );
    const cancelling = await client.batches.cancel(batch.id);
    const callsAtCancel = w.sim.stats().calls;
    expect(cancelling.status).toBe('cancelling');
    const ended = await batchEnded(client, batch.id);
    expect(ended.status).toBe('cancelled');
    console.log(
      JSON.stringify({
        calls_at_cancel: callsAtCancel - warmCalls,
        calls_after_cancel: w.sim.stats().calls - callsAtCancel,
        enqueued: ended.request_counts!.total,
      }),
    );
    // Only the calls in flight when the cancel came finished; none started after it.
    expect(w.sim.stats().calls - callsAtCancel).toBeLessThanOrEqual(CONCURRENCY);
    expect(ended.request_counts!.completed).toBeLessThanOrEqual(callsAtCancel - warmCalls + CONCURRENCY);
    // The import stopped with the cancel: it did not go on enqueuing the rest of the file.
    expect(ended.request_counts!.total).toBeLessThan(200_000);
  });
});
