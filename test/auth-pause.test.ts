import { describe, expect, it } from 'vitest';
import { readBatchRequests } from '../src/shared/batches/read-store.js';
import { runCli, spawnWorker, waitFor, waitForBatch } from './helpers/test-env.js';
import { useWorld } from './helpers/in-process-worker.js';

const WRONG_KEY = 'sk-wrong-0123456789abcdef';
const RIGHT_KEY = 'sk-right-0123456789abcdef';

describe('credentials failures pause the queue', () => {
  const w = useWorld({ apiKey: RIGHT_KEY, latencyMs: 5 });

  it('a 401 pauses everything after one call; "chatq resume" with the key fixed finishes the batch', async () => {
    const lines = Array.from({ length: 20 }, (_, i) =>
      JSON.stringify({
        custom_id: `r${i}`,
        user: `u${i % 5}`,
        model: 'gpt-4o-mini',
        messages: [{ role: 'user', content: `[seq ${i}]` }],
      }),
    );
    const submitted = await w.env.submit(lines);
    const wrong = spawnWorker(
      w.env.env({ CHATQ_BASE_URL: w.sim.url, CHATQ_API_KEY: WRONG_KEY, CHATQ_CONCURRENCY: '10' }),
    );
    await waitFor('the pause', () => w.env.redis.get(w.env.keys.pauseReason));
    // Every user's head was claimed, refused by the pause and put back (delayed): each had its chance to call.
    await waitFor('the five heads put back', async () => (await w.env.queue.getDelayedCount()) === 5);
    expect(w.sim.stats().calls).toBe(1);
    expect(w.sim.stats().byStatus).toEqual({ 401: 1 });

    const status = await runCli(['status', submitted.batchId], w.env.env());
    expect(status.stdout).toContain('QUEUE PAUSED');
    expect(status.stdout).toContain('invalid_api_key: Incorrect API key provided.');
    expect(status.stdout).toContain('chatq resume');
    expect((await w.env.batch(submitted.batchId)).succeeded).toBe(0);

    wrong.child.kill('SIGTERM');
    expect(await wrong.exited).toBe(0);
    expect(wrong.stderr()).toContain('queue paused');
    expect(wrong.stderr()).not.toContain(WRONG_KEY);

    const right = spawnWorker(
      w.env.env({ CHATQ_BASE_URL: w.sim.url, CHATQ_API_KEY: RIGHT_KEY, CHATQ_CONCURRENCY: '10' }),
    );
    try {
      const resumed = await runCli(['resume'], w.env.env());
      expect(resumed.stdout).toContain('resumed (was paused: invalid_api_key');
      const batch = await waitForBatch(w.env, submitted.batchId);
      expect(batch).toMatchObject({ succeeded: 20, failed: 0 });
    } finally {
      right.child.kill('SIGTERM');
      await right.exited;
    }
    expect(w.sim.stats().outOfOrder).toBe(0);
    const first: { attempts: number; codes: string[] }[] = [];
    for await (const r of readBatchRequests(w.env.redis, w.env.keys, submitted.batchId))
      first.push({ attempts: r.attempts, codes: r.attemptLog.map((a) => a.code) });
    expect(first.filter((r) => r.attempts === 2)).toEqual([{ attempts: 2, codes: ['invalid_api_key', 'ok'] }]);
    expect(first.filter((r) => r.attempts === 1)).toHaveLength(19);

    // The key never reached Redis.
    let cursor = '0';
    do {
      const [next, keys] = await w.env.redis.scan(cursor, 'MATCH', `${w.env.prefix}*`, 'COUNT', 500);
      cursor = next;
      for (const key of keys) {
        const type = await w.env.redis.type(key);
        const text =
          type === 'hash'
            ? JSON.stringify(await w.env.redis.hgetall(key))
            : type === 'string'
              ? await w.env.redis.get(key)
              : JSON.stringify(type === 'list' ? await w.env.redis.lrange(key, 0, -1) : '');
        expect(text).not.toContain('sk-');
      }
    } while (cursor !== '0');
  });
});
