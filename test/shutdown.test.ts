import { describe, expect, it } from 'vitest';
import { readBatchRequests } from '../src/shared/batches/read-store.js';
import { spawnWorker, waitFor, waitForBatch } from './helpers/test-env.js';
import { useWorld } from './helpers/in-process-worker.js';

describe('graceful shutdown', () => {
  const w = useWorld({ latencyMs: 5 });

  it('SIGTERM while calls wait for rate-limit capacity: the worker exits at once and hands those requests back', async () => {
    const lines = Array.from({ length: 6 }, (_, i) =>
      JSON.stringify({
        custom_id: `r${i}`,
        user: `u${i}`,
        model: 'gpt-4o-mini',
        messages: [{ role: 'user', content: 'hi' }],
      }),
    );
    const submitted = await w.env.submit(lines);
    // One request per minute: the first call goes, the other five wait for capacity.
    const slow = spawnWorker(w.env.env({ CHATQ_BASE_URL: w.sim.url, CHATQ_RPM: '1' }));
    await waitFor('the first call', async () => (await w.env.batch(submitted.batchId)).succeeded === 1, 30_000);
    slow.child.kill('SIGTERM');
    // Without handing back, the worker would sleep out the minute before exiting.
    const code = await Promise.race([slow.exited, new Promise((r) => setTimeout(() => r('still running'), 20_000))]);
    expect(code).toBe(0);
    const statuses: Record<string, number> = {};
    for await (const r of readBatchRequests(w.env.redis, w.env.keys, submitted.batchId)) {
      statuses[r.status] = (statuses[r.status] ?? 0) + 1;
      if (r.status !== 'succeeded') expect(r.attempts).toBe(0);
    }
    expect(statuses, slow.stderr()).toEqual({ succeeded: 1, queued: 5 });

    const fast = spawnWorker(w.env.env({ CHATQ_BASE_URL: w.sim.url }));
    try {
      expect((await waitForBatch(w.env, submitted.batchId)).succeeded).toBe(6);
    } finally {
      fast.child.kill('SIGTERM');
      await fast.exited;
    }
  });
});
