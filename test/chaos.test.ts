import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startLocalRedis } from '../src/cli/local-redis.js';
import { startSimulator, type Simulator } from '../src/simulator/simulator-server.js';
import { getUsage, readBatchRequests } from '../src/shared/batches/read-store.js';
import { startLocalCluster, type LocalCluster } from './helpers/local-cluster.js';
import { createTestEnv, spawnWorker, waitForBatch, type TestEnv, type WorkerProcess } from './helpers/test-env.js';
import { rng } from './helpers/seeded-random.js';

const SEQ = /\[seq (\d+)\]/;

function lines(users: number, turns: number): string[] {
  const out: string[] = [];
  for (let t = 0; t < turns; t++) {
    for (let u = 0; u < users; u++)
      out.push(
        JSON.stringify({
          custom_id: `u${u}-t${t}`,
          user: `chaos-${u}`,
          model: 'gpt-4o-mini',
          messages: [{ role: 'user', content: `[seq ${t}] hi` }],
        }),
      );
  }
  return out;
}

/** Order holds per user: calls may repeat (at-least-once), never go back; and every request finished exactly once. */
async function expectIntact(env: TestEnv, sim: Simulator, batchId: string, total: number, turns: number) {
  const batch = await waitForBatch(env, batchId, 170_000);
  expect(batch).toMatchObject({ succeeded: total, failed: 0, skipped: 0, cancelled: 0 });
  const usage = await getUsage(env.redis, env.keys, 'default', 'batch', batchId);
  expect(usage.requests).toBe(total);
  const stats = sim.stats();
  expect(stats.outOfOrder).toBe(0);
  expect(stats.overlaps).toBe(0);
  for (const u of Object.values(stats.users))
    expect([...new Set(u.arrivals.map((a) => Number(SEQ.exec(a)![1])))]).toEqual([...Array(turns).keys()]);
  let count = 0;
  for await (const r of readBatchRequests(env.redis, env.keys, batchId)) {
    expect(r.status).toBe('succeeded');
    count += 1;
  }
  expect(count).toBe(total);
  // Every answered call whose reply reached a worker counts in the report: once as its request, or as repeat spend.
  // A call answered to a worker killed before it read the reply is the only one missing.
  const unreported = stats.answered - (usage.requests + usage.repeat_calls);
  expect(unreported).toBeGreaterThanOrEqual(0);
  return { repeatedCalls: stats.answered - total, repeatCalls: usage.repeat_calls, unreported };
}

/** The same chaos on one Redis, and on a 3-master Redis Cluster with users over 6 shards. */
describe.each([
  { where: 'one Redis', shards: 1 },
  { where: 'a 3-master Redis Cluster, CHATQ_SHARDS=6', shards: 6 },
])('chaos on $where', ({ shards }) => {
  const cleanups: (() => Promise<unknown>)[] = [];
  let cluster: LocalCluster | undefined;
  beforeAll(async () => {
    if (shards > 1) cluster = await startLocalCluster(3);
  }, 60_000);
  afterAll(async () => cluster?.stop());
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  /** A test environment on the default Redis (or `redisUrl`), or on the cluster. */
  const newEnv = (redisUrl?: string) =>
    cluster ? createTestEnv(cluster.url, { cluster: true, shards }) : createTestEnv(redisUrl);

  /** A simulator, two worker processes and a batch of users x turns, returned once `progress` requests succeeded. */
  async function startRun(
    redisUrl: string | undefined,
    vars: Record<string, string>,
    users: number,
    turns: number,
    progress: number,
  ) {
    const env = await newEnv(redisUrl);
    const sim = await startSimulator({ latencyMs: 5, jitterMs: 4 });
    cleanups.push(
      () => env.cleanup(),
      () => sim.close(),
    );
    const workerEnv = env.env({ CHATQ_BASE_URL: sim.url, ...vars });
    const workers = [spawnWorker(workerEnv), spawnWorker(workerEnv)];
    cleanups.push(async () => {
      for (const w of workers) w.child.kill('SIGKILL');
    });
    const submitted = await env.submit(lines(users, turns));
    while ((await env.batch(submitted.batchId)).succeeded < progress) await new Promise((r) => setTimeout(r, 20));
    return { env, sim, submitted };
  }

  it('workers SIGKILLed at random moments: nothing lost, each counted once, order and no-overlap hold', async () => {
    const env = await newEnv();
    const sim = await startSimulator({ latencyMs: 8, jitterMs: 6 });
    cleanups.push(
      () => env.cleanup(),
      () => sim.close(),
    );
    const workerEnv = env.env({
      CHATQ_BASE_URL: sim.url,
      CHATQ_CONCURRENCY: '40',
      CHATQ_LOCK_MS: '2000',
      CHATQ_TIMEOUT_MS: '3000',
      CHATQ_RECONCILE_MS: '1000',
    });
    const workers: WorkerProcess[] = [spawnWorker(workerEnv), spawnWorker(workerEnv)];
    cleanups.push(async () => {
      for (const w of workers) w.child.kill('SIGKILL');
    });
    const submitted = await env.submit(lines(300, 10));

    // The kills' times and victims come from a seed, printed, so that a failing run can be replayed with it.
    const seed = Number(process.env.CHATQ_CHAOS_SEED) || Math.floor(Math.random() * 2 ** 31);
    const random = rng(seed);
    let kills = 0;
    while (kills < 6 && (await env.batch(submitted.batchId)).status !== 'completed') {
      await new Promise((r) => setTimeout(r, 300 + random() * 600));
      const victim = workers.splice(Math.floor(random() * workers.length), 1)[0]!;
      victim.child.kill('SIGKILL');
      await victim.exited;
      workers.push(spawnWorker(workerEnv));
      kills += 1;
    }
    const { repeatedCalls, repeatCalls, unreported } = await expectIntact(env, sim, submitted.batchId, 3000, 10);
    expect(kills, `CHATQ_CHAOS_SEED=${seed}`).toBeGreaterThan(0);
    // Repeat spend reported is spend that happened: never more than the calls made again, nor unreported calls either.
    expect(repeatCalls, `CHATQ_CHAOS_SEED=${seed}`).toBeLessThanOrEqual(repeatedCalls);
    expect(unreported, `CHATQ_CHAOS_SEED=${seed}`).toBeLessThanOrEqual(repeatedCalls);
  });

  // On the cluster, losing a master is the failover test's (cluster.test.ts).
  it.skipIf(shards > 1)(
    'Redis restarted mid-run (AOF, appendfsync always): the run completes, nothing accepted is lost',
    async () => {
      const redis = await startLocalRedis({ appendfsync: 'always' });
      let restarted = redis;
      cleanups.push(() => restarted.stop());
      const { env, sim, submitted } = await startRun(
        redis.url,
        { CHATQ_CONCURRENCY: '30', CHATQ_LOCK_MS: '2000', CHATQ_TIMEOUT_MS: '3000', CHATQ_RECONCILE_MS: '1000' },
        200,
        8,
        400,
      );

      redis.process.kill('SIGKILL');
      await new Promise((r) => redis.process.once('exit', r));
      await new Promise((r) => setTimeout(r, 1_000));
      restarted = await startLocalRedis({ port: redis.port, dir: redis.dir, appendfsync: 'always' });

      const { unreported } = await expectIntact(env, sim, submitted.batchId, 1600, 8);
      // No worker died: the report counts every call the upstream answered.
      expect(unreported).toBe(0);
    },
  );
});
