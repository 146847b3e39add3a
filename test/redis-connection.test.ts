import { describe, expect, it } from 'vitest';
import { connectRedis } from '../src/shared/redis/redis.js';
import { foldUsage } from '../src/shared/usage/usage-fold.js';
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
          p: 'default',
          u: 'ann',
          m: 'm',
          d: '2026-11-27',
          b: 'b',
          s: 'succeeded',
          t: [1, 2, 3, 0, 0],
          c: 5,
          l: '',
          ms: 0,
        }),
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
