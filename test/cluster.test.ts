import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApiService } from '../src/cli/api-service.js';
import { getUsage, readBatchRequests } from '../src/shared/batches/read-store.js';
import { startSimulator, type Simulator } from '../src/simulator/simulator-server.js';
import { startLocalCluster, type LocalCluster } from './helpers/local-cluster.js';
import {
  createTestEnv,
  runCli,
  spawnWorker,
  testLogger,
  waitFor,
  waitForBatch,
  type TestEnv,
} from './helpers/test-env.js';
import { turnLines } from './helpers/turn-lines.js';

const SEQ = /\[seq (\d+)\]/;
/** How many of the prefix's keys each master holds. */
async function keysPerMaster(cluster: LocalCluster, env: TestEnv): Promise<number[]> {
  return Promise.all(
    cluster.ports.map(async (port) => {
      const node = new Redis({ port, lazyConnect: true });
      try {
        await node.connect();
        if (!/role:master/.test(await node.info('replication'))) return -1;
        let count = 0;
        let cursor = '0';
        do {
          const [next, found] = await node.scan(cursor, 'MATCH', `${env.prefix.slice(0, -1)}*`, 'COUNT', 1000);
          cursor = next;
          count += found.length;
        } while (cursor !== '0');
        return count;
      } finally {
        node.disconnect();
      }
    }),
  ).then((counts) => counts.filter((n) => n >= 0));
}

describe.each([1, 6])('on a Redis Cluster (3 masters, CHATQ_REDIS_CLUSTER=1, CHATQ_SHARDS=%i)', (shards) => {
  let cluster: LocalCluster;
  let env: TestEnv;
  let sim: Simulator;
  beforeAll(async () => {
    cluster = await startLocalCluster(3);
    env = await createTestEnv(cluster.url, { cluster: true, shards });
    sim = await startSimulator({ latencyMs: 3, jitterMs: 2, recordMessages: false });
  }, 60_000);
  afterAll(async () => {
    await sim.close();
    await env.cleanup();
    await cluster.stop();
  });

  it('per-user order, no overlap, each request counted once, with two worker processes and a SIGKILL; the API and CLI read the batch; cancel works', async () => {
    const vars = env.env({
      CHATQ_BASE_URL: sim.url,
      CHATQ_LOCK_MS: '2000',
      CHATQ_TIMEOUT_MS: '3000',
      CHATQ_RECONCILE_MS: '500',
      CHATQ_CONCURRENCY: '30',
    });
    const workers = [spawnWorker(vars), spawnWorker(vars)];
    try {
      const submitted = await env.submit(turnLines(60, 10, 'c'));
      await waitFor('progress', async () => (await env.batch(submitted.batchId)).succeeded >= 150, 60_000, 50);
      workers[0]!.child.kill('SIGKILL');
      workers.push(spawnWorker(vars));
      const batch = await waitForBatch(env, submitted.batchId, 120_000);
      expect(batch).toMatchObject({ status: 'completed', total: 600, succeeded: 600, failed: 0 });
      expect((await getUsage(env.redis, env.keys, 'default', 'batch', submitted.batchId)).requests).toBe(600);
      const stats = sim.stats();
      expect(stats.overlaps).toBe(0);
      expect(stats.outOfOrder).toBe(0);
      for (const u of Object.values(stats.users))
        expect([...new Set(u.arrivals.map((a) => Number(SEQ.exec(a)![1])))]).toEqual([...Array(10).keys()]);
      let count = 0;
      for await (const r of readBatchRequests(env.redis, env.keys, submitted.batchId))
        count += r.status === 'succeeded' ? 1 : 0;
      expect(count).toBe(600);
      // Sharded, every master holds keys of the run (its shards' lanes, requests and queues); unsharded, one does.
      const perMaster = await keysPerMaster(cluster, env);
      expect(perMaster.filter((n) => n > 0).length, JSON.stringify(perMaster)).toBe(shards > 1 ? 3 : 1);
      // The batch's own record ends too (from its parts', by the workers' dispatcher or reconciler): its event is recorded once.
      await waitFor(
        'the record to end',
        async () => (await env.redis.hget(env.keys.batch(submitted.batchId), 'status')) === 'completed',
        30_000,
      );

      const status = await runCli(['status', submitted.batchId, '--json'], env.env());
      expect(status.code, status.stderr).toBe(0);
      expect(JSON.parse(status.stdout).batch).toMatchObject({ succeeded: 600 });
      const api = await startApiService(env.config({ CHATQ_API_TOKENS: 'cluster-token' }), testLogger(), 0);
      try {
        const res = await fetch(`${api.url}/v1/batches/${submitted.batchId}`, {
          headers: { authorization: 'Bearer cluster-token' },
        });
        expect(await res.json()).toMatchObject({
          status: 'completed',
          request_counts: { total: 600, completed: 600, failed: 0 },
        });
        const usage = await (
          await fetch(`${api.url}/v1/usage?group_by=model`, { headers: { authorization: 'Bearer cluster-token' } })
        ).json();
        expect(usage.data[0].requests).toBe(600);
        // The output file holds every result once, in input order, whichever shard ran it.
        const { output_file_id: output } = await (
          await fetch(`${api.url}/v1/batches/${submitted.batchId}`, {
            headers: { authorization: 'Bearer cluster-token' },
          })
        ).json();
        const content = await (
          await fetch(`${api.url}/v1/files/${output}/content`, { headers: { authorization: 'Bearer cluster-token' } })
        ).text();
        expect(
          content
            .trim()
            .split('\n')
            .map((l) => JSON.parse(l).custom_id),
        ).toEqual(Array.from({ length: 600 }, (_, i) => `c-${i}`));
      } finally {
        await api.close();
      }

      // A batch of 6 users (over several shards when sharded), cancelled while it runs (slow calls: 100 turns take a
      // user 5 s, so the cancel comes while every lane has turns left, however loaded the machine).
      sim.configure({ latencyMs: 50, jitterMs: 0 });
      const slow = await env.submit(turnLines(6, 100, 's'));
      await waitFor('it started', async () => (await env.batch(slow.batchId)).succeeded > 0, 30_000, 20);
      const cancel = await runCli(['cancel', slow.batchId], env.env());
      expect(cancel.code, cancel.stderr).toBe(0);
      const cancelled = await waitForBatch(env, slow.batchId, 60_000);
      expect(cancelled.status).toBe('cancelled');
      expect(cancelled.succeeded + cancelled.cancelled).toBe(600);
      expect(cancelled.cancelled).toBeGreaterThan(0);
      let unfinished = 0;
      for await (const r of readBatchRequests(env.redis, env.keys, slow.batchId))
        unfinished += r.status === 'succeeded' || r.status === 'cancelled' ? 0 : 1;
      expect(unfinished).toBe(0);
    } finally {
      sim.configure({ latencyMs: 3, jitterMs: 2 });
      for (const w of workers) w.child.kill('SIGKILL');
    }
  });
});

/**
 * A run of `users` x `turns` on a fresh 3-master cluster (with `replicas` each) and two worker processes, disturbed by
 * `midRun` once `after` requests have succeeded; the run must then complete with each request counted once, in order,
 * with no overlap.
 */
async function disturbedRun(
  opts: {
    replicas: number;
    shards: number;
    latencyMs: number;
    users: number;
    turns: number;
    after: number;
    vars?: Record<string, string>;
  },
  midRun: (cluster: LocalCluster, env: TestEnv, batchId: string) => Promise<void>,
): Promise<void> {
  const cluster = await startLocalCluster(3, opts.replicas);
  const env = await createTestEnv(cluster.url, { cluster: true, shards: opts.shards });
  const sim = await startSimulator({ latencyMs: opts.latencyMs, jitterMs: Math.ceil(opts.latencyMs / 10) + 2 });
  const vars = env.env({
    CHATQ_BASE_URL: sim.url,
    CHATQ_LOCK_MS: '2000',
    CHATQ_TIMEOUT_MS: '3000',
    CHATQ_RECONCILE_MS: '500',
    CHATQ_CONCURRENCY: '20',
    ...opts.vars,
  });
  const workers = [spawnWorker(vars), spawnWorker(vars)];
  const total = opts.users * opts.turns;
  try {
    const { batchId } = await env.submit(turnLines(opts.users, opts.turns, 'd'));
    await waitFor('progress', async () => (await env.batch(batchId)).succeeded >= opts.after, 60_000, 50);
    await midRun(cluster, env, batchId);
    expect(await waitForBatch(env, batchId, 90_000)).toMatchObject({ status: 'completed', total, succeeded: total });
    expect(sim.stats().overlaps).toBe(0);
    expect(sim.stats().outOfOrder).toBe(0);
    expect((await getUsage(env.redis, env.keys, 'default', 'batch', batchId)).requests).toBe(total);
  } finally {
    for (const w of workers) w.child.kill('SIGKILL');
    await sim.close();
    await env.cleanup();
    await cluster.stop();
  }
}

describe.each([1, 6])(
  'on a Redis Cluster whose master fails over (3 masters, 3 replicas, CHATQ_SHARDS=%i)',
  (shards) => {
    // With CHATQ_REDIS_WAIT_REPLICAS=1, what chatq guarantees through a failover: order too (without it, results
    // the failover loses send their turns again, possibly after a later one: docs/architecture.md's failure model, and
    // test/cluster-base-master.test.ts). The killed node comes back as the new master's replica, which WAIT needs.
    it('the run goes on after the master holding its batch record is killed and its replica promoted', async () => {
      await disturbedRun(
        {
          replicas: 1,
          shards,
          latencyMs: 5,
          users: 40,
          turns: 10,
          after: 100,
          vars: { CHATQ_REDIS_WAIT_REPLICAS: '1', CHATQ_REDIS_WAIT_MS: '500' },
        },
        async (cluster, env, batchId) => {
          const master = await cluster.masterOf(env.keys.batch(batchId));
          cluster.kill(master);
          await waitFor(
            'a replica promoted',
            async () => (await cluster.masterOf(env.keys.batch(batchId))) !== master,
            30_000,
            100,
          );
          cluster.restart(master);
        },
      );
    });
  },
);

describe.each([1, 6])('on a Redis Cluster that is resharded mid-run (3 masters, CHATQ_SHARDS=%i)', (shards) => {
  it('the run goes on while the slots of its batch record and of a shard move to another master, keys and all (ASK, TRYAGAIN, MOVED)', async () => {
    // 20 turns of 150 ms per user: ~3 s of work, which the moves fall in the middle of.
    await disturbedRun(
      { replicas: 0, shards, latencyMs: 150, users: 40, turns: 20, after: 60 },
      async (cluster, env, batchId) => {
        // The base tag (batch record, limits) and a shard's tag (the last one's, when sharded) move.
        let moved = 0;
        for (const key of [env.keys.batch(batchId), env.keys.shard(shards - 1).lanes]) {
          const from = await cluster.masterOf(key);
          moved += await cluster.moveSlot(key, cluster.ports.find((p) => p !== from)!);
          expect(await cluster.masterOf(key)).not.toBe(from);
        }
        expect(moved).toBeGreaterThan(0);
        // The moves happened mid-run: the batch was not done yet when they were.
        expect((await env.batch(batchId)).succeeded).toBeLessThan(800);
      },
    );
  });
});
