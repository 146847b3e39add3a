import { describe, expect, it } from 'vitest';
import { getUsage } from '../src/shared/batches/read-store.js';
import { useTestEnv } from './helpers/in-process-worker.js';

describe('usage fold', () => {
  const t = useTestEnv();

  it('folds the pending records, each once, into the user, model, day and batch aggregates', async () => {
    const k = t.env.keys;
    const tokens = [10, 20, 30, 0, 5];
    const compact = {
      p: 'team-a',
      u: 'ann',
      m: 'gpt-4o-mini',
      d: '2026-11-27',
      b: 'batch_1',
      s: 'succeeded',
      t: tokens,
      c: 700,
      l: '100',
      ms: 80,
    };
    const failed = { ...compact, s: 'failed', c: -1, l: '', ms: 0 };
    await t.env.redis.rpush(
      k.pendingUsage,
      JSON.stringify(compact),
      JSON.stringify(failed),
      JSON.stringify({ ...compact, p: 'default', u: 'bo' }),
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
