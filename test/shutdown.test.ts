import { rmSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { startLocalRedis } from '../src/cli/local-redis.js';
import { readBatchRequests } from '../src/shared/batches/read-store.js';
import { createTestEnv, spawnWorker, waitFor, waitForBatch } from './helpers/test-env.js';
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

  it("SIGTERM with nothing in flight and Redis gone: the worker exits within its shutdown steps, not its calls' timeout", async () => {
    const redis = await startLocalRedis({ appendfsync: 'off' });
    const env = await createTestEnv(redis.url);
    // In-flight calls may take their timeout and 5 s at shutdown: 65 s here. None is in flight.
    const worker = spawnWorker(env.env({ CHATQ_BASE_URL: w.sim.url, CHATQ_TIMEOUT_MS: '60000', LOG_LEVEL: 'info' }));
    try {
      const { batchId } = await env.submit(
        ['hello', 'again'].map((content, i) =>
          JSON.stringify({
            custom_id: `r${i}`,
            user: 'u',
            model: 'gpt-4o-mini',
            messages: [{ role: 'user', content }],
          }),
        ),
      );
      expect((await waitForBatch(env, batchId)).succeeded).toBe(2);
      redis.process.kill('SIGKILL');
      // Its connections see Redis gone and wait to reconnect: an ioredis client ended then never says 'end', which
      // BullMQ's close of its blocking connection waits for.
      await new Promise((r) => setTimeout(r, 1_500));
      const t0 = Date.now();
      worker.child.kill('SIGTERM');
      expect(await worker.exited).toBe(0);
      // The fetchers' close and the last steps take 2 s each at most; the calls' 65 s would be a wait for nothing.
      expect(Date.now() - t0, worker.stderr()).toBeLessThan(15_000);
    } finally {
      worker.child.kill('SIGKILL');
      await redis.stop();
      rmSync(redis.dir, { recursive: true, force: true });
    }
  }, 120_000);
});
