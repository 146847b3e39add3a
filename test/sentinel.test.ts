import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getUsage } from '../src/shared/batches/read-store.js';
import { startSimulator } from '../src/simulator/simulator-server.js';
import { startWorker } from './helpers/in-process-worker.js';
import { conversationLines } from './helpers/net-world.js';
import { startSentinelSet, type SentinelSet } from './helpers/sentinel-redis.js';
import { createTestEnv, runCli, waitFor, waitForBatch } from './helpers/test-env.js';

describe('managed Redis: Sentinel', () => {
  let set: SentinelSet;
  beforeAll(async () => {
    set = await startSentinelSet();
  }, 60_000);
  afterAll(async () => {
    await set.stop();
  });

  it('says in one line when the sentinels know no such master', async () => {
    const res = await runCli(
      ['status', 'batch_none'],
      {
        ...(process.env as Record<string, string>),
        REDIS_URL: `redis+sentinel://127.0.0.1:${set.sentinelPort}/no-such-master`,
        LOG_LEVEL: 'warn',
      },
      60_000,
    );
    expect(res.code).toBe(2);
    expect(res.stderr.trim().split('\n')).toHaveLength(1);
    expect(res.stderr).toMatch(/sentinels know no master named "no-such-master"/);
  });

  it('goes on through a failover mid-run (the master killed): nothing lost, counted once, no overlap, in order', async () => {
    const sim = await startSimulator({ latencyMs: 150, jitterMs: 50 });
    const env = await createTestEnv(set.url);
    const users = 20;
    const turns = 6;
    try {
      const submitted = await env.submit(conversationLines(users, turns, 'sent'));
      const pool = await startWorker(
        env.config({
          CHATQ_REDIS_WAIT_REPLICAS: '1',
          CHATQ_CONCURRENCY: '20',
          CHATQ_LOCK_MS: '3000',
          CHATQ_TIMEOUT_MS: '5000',
          CHATQ_RECONCILE_MS: '500',
        }),
        sim.url,
      );
      try {
        await waitFor(
          'a third of the batch done',
          async () => (await env.batch(submitted.batchId)).succeeded >= (users * turns) / 3,
          60_000,
          50,
        );
        set.master.kill('SIGKILL');
        await waitFor('the replica promoted', async () => (await set.currentMaster()) === set.replicaPort, 30_000, 200);
        // With CHATQ_REDIS_WAIT_REPLICAS=1 no call goes out until the new master has a replica again.
        await set.addReplica();
        const batch = await waitForBatch(env, submitted.batchId, 120_000);
        expect(batch).toMatchObject({ status: 'completed', total: users * turns, succeeded: users * turns });
      } finally {
        await pool.close();
      }
      expect((await getUsage(env.redis, env.keys, 'default', 'batch', submitted.batchId)).requests).toBe(users * turns);
      const stats = sim.stats();
      expect(stats.overlaps).toBe(0);
      expect(stats.outOfOrder).toBe(0);
    } finally {
      await sim.close();
      await env.cleanup();
    }
  }, 180_000);
});
