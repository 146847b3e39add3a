import { describe, expect, it } from 'vitest';
import { getUsage } from '../src/shared/batches/read-store.js';
import type { UsageRecord } from '../src/shared/usage/usage-fold.js';
import { useTestEnv } from './helpers/in-process-worker.js';

describe('usage fold', () => {
  const t = useTestEnv();

  it('folds the pending records, each once, into the user, model, day and batch aggregates', async () => {
    const k = t.env.keys;
    const compact: UsageRecord = {
      project: 'team-a',
      userid: 'ann',
      model: 'gpt-4o-mini',
      day: '2026-11-27',
      batch: 'batch_1',
      status: 'succeeded',
      tokens: { prompt_tokens: 10, completion_tokens: 20, total_tokens: 30, reasoning_tokens: 5 },
      cost_nano: 700,
      latency_bucket: '100',
      latency_ms: 80,
    };
    const failed: UsageRecord = { ...compact, status: 'failed', cost_nano: -1, latency_bucket: '', latency_ms: 0 };
    await t.env.redis.rpush(
      k.pendingUsage,
      JSON.stringify(compact),
      JSON.stringify(failed),
      JSON.stringify({ ...compact, project: 'default', userid: 'bo' }),
    );

    const ann = await getUsage(t.env.redis, k, 'team-a', 'user', 'ann');
    expect(ann).toMatchObject({
      requests: 2,
      succeeded: 1,
      failed: 1,
      prompt_tokens: 20,
      total_tokens: 60,
      reasoning_tokens: 10,
      cost_nano: 700,
      unpriced: 1,
    });
    expect(await getUsage(t.env.redis, k, 'team-a', 'model', 'gpt-4o-mini')).toMatchObject({
      requests: 2,
      completion_tokens: 40,
    });
    expect(await getUsage(t.env.redis, k, 'default', 'user', 'bo')).toMatchObject({ requests: 1, cost_nano: 700 });
    expect(await t.env.redis.zrange(k.usageIndex('team-a', 'user'), 0, -1)).toEqual(['ann']);
    // Folded once: reading again adds nothing.
    expect(await t.env.redis.llen(k.pendingUsage)).toBe(0);
    expect((await getUsage(t.env.redis, k, 'team-a', 'day', '2026-11-27')).requests).toBe(2);
  });
});
