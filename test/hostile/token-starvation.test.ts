import { describe, expect, it } from 'vitest';
import { cancelBatch } from '../../src/shared/batches/cancel-batch.js';
import { getRequests } from '../../src/shared/batches/read-store.js';
import { legacyUserid } from '../../src/shared/userid.js';
import { useWorld } from '../helpers/in-process-worker.js';
import { waitFor } from '../helpers/test-env.js';

const chat = (id: string, user: string, fields: Record<string, unknown> = {}) =>
  JSON.stringify({
    custom_id: id,
    user,
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: `hello from ${user}` }],
    ...fields,
  });

describe('a large token bound holds back nobody else', () => {
  const w = useWorld({ latencyMs: 300 });
  /** Cancels a batch and waits (seconds, not the minute a TPM window takes) until it has ended "cancelled". */
  const cancelled = async (batchId: string) => {
    await cancelBatch(w.env.redis, w.env.keys, w.env.queues, batchId, 3600, {
      code: 'cancelled',
      message: 'cancelled by the test',
    });
    return waitFor(
      `${batchId} cancelled`,
      async () => {
        const x = await w.env.batch(batchId);
        return x.status === 'cancelled' ? x : undefined;
      },
      15_000,
    );
  };

  it("max_tokens past the model's known output limit is a bad line that names the field and the limit", async () => {
    const r = await w.env.submit([
      chat('ok', 'u1', { max_tokens: 16_384 }),
      chat('over', 'u2', { max_tokens: 16_385 }),
      chat('unlisted', 'u3', { model: 'house-model-x', max_tokens: 1_048_576 }),
    ]);
    expect(r.acceptedRequests).toBe(2);
    expect(r.errors).toEqual([
      expect.objectContaining({
        line: 2,
        field: 'max_tokens',
        message: expect.stringMatching(/16385 is over gpt-4o-mini's output limit of 16384 tokens/),
      }),
    ]);
  });

  it('calls whose bound is over a share of the TPM window wait without holding slots; ordinary users go on; a cancel stops them at once', async () => {
    // Batch A: 25 users whose every call may take up to a million tokens (a model with no known output limit).
    const big = await w.env.submit(
      Array.from({ length: 25 }, (_, i) =>
        chat(`big-${i}`, `big-${i}`, { model: 'house-model-x', max_tokens: 1_048_576 }),
      ),
    );
    await w.startWorker({ CHATQ_TPM: '60000', CHATQ_CONCURRENCY: '10' });
    await waitFor('a large call under way', async () => (await w.env.batch(big.batchId)).succeeded > 0, 30_000);
    // Batch B, submitted while A waits for room: ten ordinary users.
    const small = await w.env.submit(
      Array.from({ length: 10 }, (_, i) => chat(`small-${i}`, `small-${i}`, { max_tokens: 64 })),
    );
    const b = await waitFor(
      'the ordinary batch',
      async () => {
        const x = await w.env.batch(small.batchId);
        return x.status === 'completed' ? x : undefined;
      },
      30_000,
    );
    expect(b.succeeded).toBe(10);
    const a = await w.env.batch(big.batchId);
    expect(a.succeeded).toBeLessThan(25);

    // Cancelling A ends it at once: what waits for capacity is cancelled, and no more of its calls start.
    const ended = await cancelled(big.batchId);
    expect(ended.cancelled).toBeGreaterThan(0);
    expect(ended.cancelled + ended.succeeded).toBe(25);
    const callsOfA = () =>
      Array.from({ length: 25 }, (_, i) => w.sim.stats().users[legacyUserid(`big-${i}`)]?.calls ?? 0).reduce(
        (x, y) => x + y,
        0,
      );
    // Once no job of A is at work, nothing of it is in hand to call.
    await waitFor('no job of A at work', async () =>
      (await w.env.queue.getActive()).every((j) => !j.id?.startsWith(`${big.batchId}-`)),
    );
    expect(callsOfA()).toBe(ended.succeeded);
  });

  it('a request waiting for capacity inside a call slot ends as soon as its batch is cancelled', async () => {
    // A tight limit: two of these calls per ten seconds, so most of the batch waits for room in its call slots.
    const batch = await w.env.submit(
      Array.from({ length: 12 }, (_, i) => chat(`w-${i}`, `waiting-${i}`, { max_tokens: 64 })),
    );
    await w.startWorker({ CHATQ_TPM: '1200', CHATQ_CONCURRENCY: '20' });
    await waitFor('the first calls', async () => (await w.env.batch(batch.batchId)).succeeded > 0, 30_000);
    const ended = await cancelled(batch.batchId);
    expect(ended.cancelled).toBeGreaterThan(5);
    expect(ended.cancelled + ended.succeeded).toBe(12);
    expect(w.sim.stats().calls).toBe(ended.succeeded);
    // The ones cancelled while they waited end like the others, with the cancel's reason.
    const requests = await getRequests(
      w.env.redis,
      w.env.keys,
      Array.from({ length: 12 }, (_, i) => `${batch.batchId}-${i + 1}`),
    );
    expect(requests.filter((r) => r?.error?.message.includes('cancelled by the test'))).toHaveLength(ended.cancelled);
  });
});
