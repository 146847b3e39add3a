import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '../src/simulator/simulator-server.js';
import { startLocalCluster, type LocalCluster } from './helpers/local-cluster.js';
import {
  createTestEnv,
  runCli,
  spawnWorker,
  waitFor,
  waitForBatch,
  type TestEnv,
  type WorkerProcess,
} from './helpers/test-env.js';

const clusterState = async (port: number) => {
  const node = new Redis({ port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  node.on('error', () => undefined);
  try {
    await node.connect();
    return /cluster_state:(\w+)/.exec(String(await node.call('CLUSTER', 'INFO')))?.[1];
  } finally {
    node.disconnect();
  }
};

/**
 * A Redis Cluster whose master stopped answering and has no replica to take over: the others say cluster_state:fail
 * until it is back (as during a failover, before the replica is promoted). A process started meanwhile must neither
 * hang without a word nor give up: a worker waits, saying why, and works once the cluster is up; a one-shot command says
 * that the cluster is not up.
 */
describe('a Redis Cluster that is down (cluster_state:fail) when a process starts', () => {
  let cluster: LocalCluster | undefined;
  let sim: Simulator | undefined;
  let env: TestEnv | undefined;
  let worker: WorkerProcess | undefined;
  let paused: number | undefined;
  afterAll(async () => {
    if (paused !== undefined) cluster?.resume(paused);
    worker?.child.kill('SIGKILL');
    await env?.cleanup().catch(() => undefined);
    env?.redis.disconnect();
    await sim?.close();
    await cluster?.stop();
  });

  it('chatq worker waits for the cluster, saying so, then works; chatq status says the cluster is not up', async () => {
    cluster = await startLocalCluster(3, 0);
    sim = await startSimulator({ latencyMs: 5, jitterMs: 2 });
    env = await createTestEnv(cluster.url, { cluster: true });
    const submitted = await env.submit(
      Array.from({ length: 6 }, (_, i) =>
        JSON.stringify({
          custom_id: `d${i}`,
          user: `u${i % 3}`,
          model: 'gpt-4o-mini',
          messages: [{ role: 'user', content: 'hi' }],
        }),
      ),
    );
    const owner = await cluster.masterOf(`${env.prefix}:x`);
    const other = cluster.ports.find((p) => p !== owner)!;
    paused = owner;
    cluster.pause(owner);
    await waitFor('cluster_state:fail', async () => (await clusterState(other)) === 'fail', 20_000, 100);

    const status = await runCli(['status', submitted.batchId], env.env(), 30_000);
    expect(status.code).toBe(2);
    expect(status.stderr).toMatch(/Redis Cluster .* is not up/);

    worker = spawnWorker(env.env({ CHATQ_BASE_URL: sim.url }));
    await waitFor(
      'the worker saying it waits for the cluster',
      async () => /waiting for the Redis Cluster/.test(worker!.stderr()),
      20_000,
      100,
    );
    expect(worker.child.exitCode).toBeNull();

    cluster.resume(owner);
    paused = undefined;
    await waitForBatch(env, submitted.batchId, 60_000);
    expect(await env.batch(submitted.batchId)).toMatchObject({ status: 'completed', succeeded: 6 });
  });
});
