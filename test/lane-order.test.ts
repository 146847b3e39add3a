import { describe, expect, it } from 'vitest';
import { waitFor, waitForBatch } from './helpers/test-env.js';
import { useWorld } from './helpers/in-process-worker.js';

const line = (user: string, content: string) =>
  JSON.stringify({ custom_id: content, user, model: 'gpt-4o-mini', messages: [{ role: 'user', content }] });

/** Every call's last user message, in the order the calls reached the upstream. */
function arrivalOrder(users: Record<string, { arrivals: string[]; arrivedAt: number[] }>): string[] {
  const calls = Object.values(users).flatMap((u) => u.arrivals.map((content, i) => ({ content, at: u.arrivedAt[i]! })));
  return calls.sort((a, b) => a.at - b.at).map((c) => c.content);
}

describe('the order lane heads wait in', () => {
  const w = useWorld({ latencyMs: 300 });

  it("a lane with fewer of its user's requests ahead goes first: a batch's users move on together", async () => {
    // One call slot, no lane slice: every turn's next one waits in the queue with the other lanes' heads.
    await w.startWorker({ CHATQ_CONCURRENCY: '1', CHATQ_LANE_SLICE_MS: '0' });
    const first = await w.env.submit([line('alice', 'A1'), line('alice', 'A2'), line('zoe', 'Z1')]);
    await waitFor('A1 at the upstream', async () => w.sim.stats().calls >= 1);
    // Held: while A1 is out, nothing more starts; its next turn A2 waits in the queue, one request of alice's behind.
    await w.env.queues.pause();
    await waitFor('A1 done', async () => (await w.env.batch(first.batchId)).succeeded >= 1);
    await waitFor('A2 in the queue', async () => (await w.env.queue.getJob(`${first.batchId}-2`)) !== undefined);
    // bob's first request comes later than A2, with nothing of his ahead of it.
    const second = await w.env.submit([line('bob', 'B1')]);
    await w.env.queues.resume();
    await waitForBatch(w.env, first.batchId);
    await waitForBatch(w.env, second.batchId);
    expect(arrivalOrder(w.sim.stats().users)).toEqual(['A1', 'Z1', 'B1', 'A2']);
  });
});
