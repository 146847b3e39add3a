import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { startLocalRedis } from '../src/cli/local-redis.js';
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

describe('a connection', () => {
  it('sends the commands of one turn of the event loop in one write: Redis reads them at once', async () => {
    // A Redis of its own: nothing else reads from it.
    const redis = await startLocalRedis({ appendfsync: 'off' });
    const admin = new Redis(redis.url);
    const client = connectRedis({ redisUrl: redis.url, redisCluster: false }, 'chatq-test-turns');
    try {
      await client.ping();
      const reads = async () => Number(/^total_reads_processed:(\d+)/m.exec(await admin.info('stats'))![1]);
      const before = await reads();
      const answers = await Promise.all(Array.from({ length: 200 }, (_, i) => client.incr(`n${i % 7}`)));
      const after = await reads();
      expect(answers).toHaveLength(200);
      expect(answers.reduce((a, b) => Math.max(a, b), 0)).toBe(29);
      // The 200 commands in one read or two (16 KB a read), and the INFO that counts them.
      expect(after - before).toBeLessThanOrEqual(3);
    } finally {
      client.disconnect();
      admin.disconnect();
      await redis.stop();
    }
  });
});
