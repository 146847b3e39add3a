import { describe, expect, it } from 'vitest';
import { getUsage } from '../../src/shared/batches/read-store.js';
import { useWorld } from '../helpers/in-process-worker.js';
import { waitForBatch } from '../helpers/test-env.js';

const line = (i: number) =>
  JSON.stringify({
    custom_id: `r${i}`,
    user: `user-${i}`,
    model: 'gpt-4o-mini',
    max_tokens: 30,
    messages: [{ role: 'user', content: `hello ${i}` }],
  });

describe('budgets hold with many calls in flight', () => {
  const w = useWorld({ latencyMs: 30, jitterMs: 20 });

  /** `users` one-turn users in one batch with a budget, `concurrency` calls in flight: the batch and what it spent. */
  async function run(users: number, budgetNano: number, concurrency: number) {
    const submitted = await w.env.submit(
      Array.from({ length: users }, (_, i) => line(i)),
      { maxCostNano: budgetNano },
    );
    await w.startWorker({ CHATQ_CONCURRENCY: String(concurrency) });
    const batch = await waitForBatch(w.env, submitted.batchId);
    return { batch, spent: (await getUsage(w.env.redis, w.env.keys, 'default', 'batch', submitted.batchId)).cost_nano };
  }

  it('40 one-turn users with a $0.0002 budget: spend stays within it, and the status says what happened', async () => {
    const { batch, spent } = await run(40, 200_000, 50);
    expect(spent).toBeLessThanOrEqual(200_000);
    expect(batch.succeeded).toBeGreaterThan(5);
    expect(batch.succeeded + batch.cancelled).toBe(40);
    expect(batch.status).toBe(batch.cancelled > 0 ? 'cancelled' : 'completed');
  });

  it('600 users, 100 calls in flight: overshoot is bounded by the estimate error (none here), and most of the budget is used', async () => {
    const budget = 2_000_000;
    const { batch, spent } = await run(600, budget, 100);
    // One call's reservation at most is left unused at the end (prompt estimate + 30 reply tokens at gpt-4o-mini's prices).
    const oneReservation = 20 * 150 + 30 * 600;
    expect(spent).toBeLessThanOrEqual(budget);
    expect(spent).toBeGreaterThan(budget - 2 * oneReservation);
    expect(batch.status).toBe('cancelled');
    expect(batch.succeeded + batch.cancelled).toBe(600);
  });

  it('a batch whose requests all succeeded is completed, whatever its budget', async () => {
    const { batch } = await run(10, 10_000_000, 50);
    expect(batch).toMatchObject({ status: 'completed', succeeded: 10 });
  });
});
