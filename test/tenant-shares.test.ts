import { describe, expect, it } from 'vitest';
import { chatLines } from './helpers/api-batches.js';
import { useWorld } from './helpers/in-process-worker.js';
import { waitFor, waitForBatch } from './helpers/test-env.js';

/** About `words` words of prompt: a long document to summarise. */
const longPrompt = (words: number, seed: number) =>
  Array.from({ length: words }, (_, i) => `w${(i * 7 + seed) % 1_000}`).join(' ');

describe('tenants: projects share capacity, neither starves the other', () => {
  const w = useWorld({ latencyMs: 50 });

  it("calls waiting for token room hold no call slot: another project's ordinary batch runs meanwhile", async () => {
    // Beta: 200 users, each one call of ~4.7k tokens (just under the large-call cutoff of 10% of 50k): two fit in a
    // sixth of the minute, so nearly all of them wait for token room.
    const heavy = await w.env.submit(
      chatLines(200, (i) => ({
        user: `beta-${i}`,
        messages: [{ role: 'user', content: longPrompt(2_300, i) }],
        max_tokens: 200,
      })),
      { project: 'beta' },
    );
    await w.startWorker({ CHATQ_TPM: '50000', CHATQ_CONCURRENCY: '10' });
    await waitFor('beta under way', async () => (await w.env.batch(heavy.batchId)).succeeded >= 1, 30_000);
    // Alpha: 30 ordinary one-turn users, submitted while beta's calls wait for room.
    const light = await w.env.submit(
      chatLines(30, (i) => ({ user: `alpha-${i}`, max_tokens: 20 })),
      {
        project: 'alpha',
      },
    );
    const done = await waitForBatch(w.env, light.batchId, 60_000);
    const beta = await w.env.batch(heavy.batchId);
    expect(done.succeeded).toBe(30);
    // Alpha did not wait for beta's batch to go through the token limit first.
    expect(beta.succeeded).toBeLessThan(50);
  });

  it('a project with few users gets its share of the call slots beside a project with many', async () => {
    // Beta: 300 users x 6 turns. Alpha: 20 users x 6 turns, submitted once beta is under way.
    await w.startWorker({ CHATQ_CONCURRENCY: '20' });
    const many = await w.env.submit(
      chatLines(1_800, (i) => ({ user: `beta-${i % 300}` })),
      { project: 'beta' },
    );
    await waitFor('beta under way', async () => (await w.env.batch(many.batchId)).succeeded >= 20, 30_000, 20);
    const few = await w.env.submit(
      chatLines(120, (i) => ({ user: `alpha-${i % 20}` })),
      { project: 'alpha' },
    );
    const betaBefore = (await w.env.batch(many.batchId)).succeeded;
    const done = await waitForBatch(w.env, few.batchId, 120_000);
    const meanwhile = (await w.env.batch(many.batchId)).succeeded - betaBefore;
    expect(done.succeeded).toBe(120);
    // With equal shares alpha's 120 calls take about as many of beta's (plus a round of slots each way); shared per
    // user, beta's 300 users would take 15 of every 16 slots (~1,700 calls meanwhile).
    expect(meanwhile).toBeLessThan(400);
  });
});
