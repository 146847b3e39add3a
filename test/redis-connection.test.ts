import { describe, expect, it } from 'vitest';
import { connectRedis } from '../src/shared/redis/redis.js';
import { foldUsage, type UsageRecord } from '../src/shared/usage/usage-fold.js';
import { REDIS_URL } from './helpers/test-env.js';
import { useTestEnv } from './helpers/in-process-worker.js';

describe('an auto-pipelined connection', () => {
  const t = useTestEnv();

  it('runs a script first sent in the same tick as another command (scripts are defined on it before any pipeline)', async () => {
    const client = connectRedis({ redisUrl: REDIS_URL, redisCluster: false }, 'chatq-test-pipelined', {
      autoPipelining: true,
    });
    try {
      await t.env.redis.rpush(
        t.env.keys.pendingUsage,
        JSON.stringify({
          project: 'default',
          userid: 'ann',
          model: 'm',
          day: '2026-11-27',
          batch: 'b',
          status: 'succeeded',
          tokens: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 },
          cost_nano: 5,
          latency_bucket: '',
          latency_ms: 0,
        } satisfies UsageRecord),
      );
      // The GET opens this tick's pipeline; the fold's script joins it.
      const [, folded] = await Promise.all([client.get(t.env.keys.metrics), foldUsage(client, t.env.keys)]);
      expect(folded).toBe(1);
      expect(await t.env.redis.hget(t.env.keys.usage('default', 'user', 'ann'), 'total_tokens')).toBe('3');
    } finally {
      client.disconnect();
    }
  });
});
