import { afterEach, describe, expect, it } from 'vitest';
import { getUsage, readBatchRequests } from '../../src/shared/batches/read-store.js';
import { startSimulator, type Simulator } from '../../src/simulator/simulator-server.js';
import { netCluster, type NetCluster } from '../helpers/net-cluster.js';
import { chatqOn, netLab, type HostProcess, type NetLab } from '../helpers/net-hosts.js';
import { conversationLines, expectInvariants } from '../helpers/net-world.js';
import { createTestEnv, waitFor, waitForBatch, type TestEnv } from '../helpers/test-env.js';

/**
 * A Redis Cluster master cut off from the other masters, its replica and the workers on their side, while a worker on
 * its own side goes on writing to it until it stops taking writes (cluster-node-timeout); its replica is promoted on
 * the majority side, and the old master, once back, becomes its replica and drops what it took meanwhile.
 */
describe('network (e): a Redis Cluster master on the minority side of a partition', () => {
  let lab: NetLab | undefined;
  let cluster: NetCluster | undefined;
  let sim: Simulator | undefined;
  let env: TestEnv | undefined;
  let workers: HostProcess[] = [];
  afterEach(async () => {
    await Promise.all(workers.map((w) => w.stop('SIGKILL')));
    workers = [];
    await env?.cleanup().catch(() => undefined);
    env?.redis.disconnect();
    await sim?.close();
    await cluster?.stop();
    await lab?.close();
  });

  async function split(waitReplicas: number) {
    lab = await netLab();
    const masters = [await lab.host('m1'), await lab.host('m2'), await lab.host('m3')];
    cluster = await netCluster(masters, 2_000);
    sim = await startSimulator({ latencyMs: 2_000, jitterMs: 1_000 }, 0, lab.gateway);
    env = await createTestEnv(cluster.url, { cluster: true });
    const owner = await cluster.ownerOf(`${env.prefix}:x`);
    const replica = await lab.host('replica');
    await cluster.addReplica(replica, owner);
    const others = masters.filter((m) => m !== owner);
    const users = 20;
    const turns = 4;
    const submitted = await env.submit(conversationLines(users, turns, `split${waitReplicas}`));
    // One worker beside the master that will be cut off (its side), one on the majority's side.
    const near = await lab.host('near');
    const far = await lab.host('far');
    const vars = {
      ...env.env(),
      LOG_LEVEL: 'warn',
      CHATQ_BASE_URL: sim.url,
      CHATQ_CONCURRENCY: '20',
      CHATQ_TIMEOUT_MS: '8000',
      CHATQ_LOCK_MS: '3000',
      CHATQ_REDIS_WAIT_REPLICAS: String(waitReplicas),
      CHATQ_REDIS_WAIT_MS: '500',
    };
    // The near worker takes every lane first; the far one waits on the other side for what the failover gives it.
    workers = [chatqOn(near, ['worker'], vars)];
    await waitFor(
      'the near worker calling for every user',
      async () => (sim!.stats().arrivalsFrom[near.ip] ?? []).length >= users,
      60_000,
      20,
    );
    workers.push(chatqOn(far, ['worker'], vars));
    for (const peer of [...others, replica, far]) await owner.cut(peer.ip);
    // A call whose claim was on the replica before the cut may reach the upstream just after it: not counted.
    const cutAt = Date.now() + 500;
    await waitFor('the replica promoted', async () => cluster!.isMaster(replica, others[0]!), 40_000, 200);
    // The old master stops taking writes once it has not seen a majority for the node timeout: well within this.
    await new Promise((r) => setTimeout(r, 3_000));
    expect(await owner.dropped()).toBeGreaterThan(0);
    const healAt = Date.now();
    await owner.heal();
    await waitForBatch(env, submitted.batchId, 150_000).catch(async (err: Error) => {
      throw new Error(`${err.message}: ${await whyNotDone(env!, submitted.batchId, workers, cluster!)}`);
    });
    const nearCallsDuringSplit = (sim.stats().arrivalsFrom[near.ip] ?? []).filter(
      (t) => t > cutAt && t < healAt,
    ).length;
    const stats = sim.stats();
    const nearCallsAfterHeal = (stats.arrivalsFrom[near.ip] ?? []).filter((t) => t > healAt).length;
    return {
      nearCallsAfterHeal,
      env,
      sim,
      batchId: submitted.batchId,
      total: users * turns,
      nearCallsDuringSplit,
      overlaps: stats.overlaps,
      repeats: stats.calls - users * turns,
      outOfOrder: stats.outOfOrder,
    };
  }

  it('without CHATQ_REDIS_WAIT_REPLICAS: the cut-off side calls on claims the failover loses', async () => {
    const r = await split(0);
    // Claims the old master acknowledged after the cut, each acted on with a call, and gone with its data.
    expect(r.nearCallsDuringSplit).toBeGreaterThan(0);
    // Nothing enqueued is lost, and each request is counted once, whatever the failover dropped.
    expect(await r.env.batch(r.batchId)).toMatchObject({ status: 'completed', total: r.total, succeeded: r.total });
    expect((await getUsage(r.env.redis, r.env.keys, 'default', 'batch', r.batchId)).requests).toBe(r.total);
  });

  it('with CHATQ_REDIS_WAIT_REPLICAS=1: no call goes out on a claim that is not on the replica; every invariant holds', async () => {
    const r = await split(1);
    expect(r.nearCallsDuringSplit).toBe(0);
    await expectInvariants(r, r.batchId, r.total);
  });
});

/** What keeps a batch from ending: its unfinished requests by status, a few lanes with their leases, the jobs, the workers' output. */
async function whyNotDone(env: TestEnv, batchId: string, workers: HostProcess[], cluster: NetCluster): Promise<string> {
  const unfinished: Record<string, number> = {};
  for await (const r of readBatchRequests(env.redis, env.keys, batchId))
    if (r.status !== 'succeeded') unfinished[r.status] = (unfinished[r.status] ?? 0) + 1;
  const users = await env.redis.smembers(env.keys.lanes);
  const lanes = await Promise.all(
    users.slice(0, 3).map(async (u) => {
      const lane = await env.redis.lrange(env.keys.lane(u), 0, -1);
      return {
        head: lane[0] && (await env.redis.hgetall(env.keys.request(lane[0]))),
        length: lane.length,
        lease: await env.redis.get(env.keys.laneLease(u)),
        leaseMs: await env.redis.pttl(env.keys.laneLease(u)),
      };
    }),
  );
  const batch = await env.batch(batchId);
  return JSON.stringify({
    batch: { status: batch.status, succeeded: batch.succeeded, failed: batch.failed, total: batch.total },
    unfinished,
    lanesWithWork: users.length,
    lanes,
    jobs: await env.queue.getJobCounts(),
    nodes: await cluster.clients(),
    workers: workers.map((w) => w.output().slice(-1000)),
  });
}
