import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { getUsage } from '../src/shared/batches/read-store.js';
import { startSimulator } from '../src/simulator/simulator-server.js';
import { WorkerPool } from '../src/worker/worker-pool.js';
import { finishScript } from '../src/worker/store/finish-call.js';
import { startFaultProxy } from './helpers/fault-proxy.js';
import { createTestEnv, REDIS_URL, testLogger, waitFor, waitForBatch } from './helpers/test-env.js';

const TURNS = 4;
const USER = 'stalled-finish-user';

/** Every key under `prefix`: its dump and its time to live (ms; 0: none). */
async function snapshot(redis: Redis, prefix: string): Promise<Map<string, { dump: Buffer; ttl: number }>> {
  const keys: string[] = [];
  for await (const page of redis.scanStream({ match: `${prefix}*`, count: 1000 }) as AsyncIterable<string[]>)
    keys.push(...page);
  const out = new Map<string, { dump: Buffer; ttl: number }>();
  for (const key of keys) {
    const dump = await redis.dumpBuffer(key);
    if (dump) out.set(key, { dump, ttl: Math.max(0, await redis.pttl(key)) });
  }
  return out;
}

/** Puts every key under `prefix` back as `snap` holds it: what a master that never took the writes since holds. */
async function restore(redis: Redis, prefix: string, snap: Map<string, { dump: Buffer; ttl: number }>): Promise<void> {
  for (const key of (await snapshot(redis, prefix)).keys()) if (!snap.has(key)) await redis.del(key);
  for (const [key, { dump, ttl }] of snap) await redis.restore(key, ttl, dump, 'REPLACE');
}

describe('a finish whose master answers late, then drops what it wrote (demoted when it wakes)', () => {
  it('is written again: the result kept and counted once, the next turn sent once and after it, no call made again', async () => {
    const proxy = await startFaultProxy({ host: '127.0.0.1', port: Number(new URL(REDIS_URL).port || 6379) });
    const env = await createTestEnv();
    const admin = new Redis(REDIS_URL);
    const sim = await startSimulator({ latencyMs: 20 });
    let pool: WorkerPool | undefined;
    try {
      pool = await WorkerPool.start({
        config: env.config({ REDIS_URL: proxy.url, CHATQ_CONCURRENCY: '2', CHATQ_RECONCILE_MS: '300' }),
        baseUrl: sim.url,
        logger: testLogger(),
      });
      // The second turn's finish: Redis runs it, its answer is 2 s late (a stall), and meanwhile Redis is put back as
      // it was before it ran (the promoted replica never had the write; the old master, told, drops it too).
      let before = new Map<string, { dump: Buffer; ttl: number }>();
      proxy.add({
        command: 'EVALSHA',
        arg: finishScript.lua.sha,
        skip: 1,
        fault: 'hold',
        holdMs: 2_000,
        before: async () => {
          before = await snapshot(admin, env.keys.prefix);
        },
        whileHeld: () => restore(admin, env.keys.prefix, before),
      });
      const batch = await env.submit(
        Array.from({ length: TURNS }, (_, t) =>
          JSON.stringify({
            custom_id: `t${t}`,
            user: USER,
            model: 'gpt-4o-mini',
            messages: [{ role: 'user', content: `[seq ${t}] turn ${t}` }],
          }),
        ),
      );
      const done = await waitForBatch(env, batch.batchId, 60_000);
      expect(proxy.fired()).toBe(1);
      expect(done).toMatchObject({ status: 'completed', succeeded: TURNS, failed: 0 });
      await waitFor('usage folded', async () => {
        return (await getUsage(env.redis, env.keys, 'default', 'batch', batch.batchId)).requests === TURNS;
      });
      // Each turn reached the upstream once, in order, one at a time: the lost result was written again before the
      // next turn went. With a stall not taken as a doubt (request-store.ts), the run goes on with the turn its lost
      // write had claimed: measured, that turn went before its predecessor's result stood, and the predecessor was
      // sent again 120 s later, once its call lease ran out (5 calls, 1 out of order).
      const stats = sim.stats();
      const user = Object.values(stats.users)[0]!;
      expect({ calls: stats.calls, outOfOrder: stats.outOfOrder, overlaps: stats.overlaps }).toEqual({
        calls: TURNS,
        outOfOrder: 0,
        overlaps: 0,
      });
      expect(user.arrivals).toHaveLength(TURNS);
      expect((await getUsage(env.redis, env.keys, 'default', 'batch', batch.batchId)).requests).toBe(TURNS);
    } finally {
      await pool?.close();
      await sim.close();
      admin.disconnect();
      await env.cleanup();
      await proxy.close();
    }
  });
});
