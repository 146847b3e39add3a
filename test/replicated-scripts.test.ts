import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { connectRedis, LuaScript, type RedisClient } from '../src/shared/redis/redis.js';
import { startLocalCluster, type LocalCluster } from './helpers/local-cluster.js';
import { waitFor } from './helpers/test-env.js';

const file = join(tmpdir(), `chatq-incr-${process.pid}.lua`);
writeFileSync(file, "return redis.call('INCR', KEYS[1])\n");
const incr = new LuaScript(new URL(`file://${file}`));

/** The port of the replica of the master on `port`. */
async function replicaOf(cluster: LocalCluster, port: number): Promise<number> {
  for (const p of cluster.ports) {
    const node = new Redis({ port: p });
    try {
      if (new RegExp(`master_port:${port}\\b`).test(await node.info('replication'))) return p;
    } finally {
      node.disconnect();
    }
  }
  throw new Error(`no replica of ${port}`);
}

/**
 * CHATQ_REDIS_WAIT_REPLICAS runs a claim's or a result's script and WAIT in one pipeline, on the node of the script's
 * keys. After a failover, a connection whose map of the slots is stale sends that pipeline to the old master: its
 * answer (MOVED) must lead the connection to the new master, as a single command's would, not fail every call after.
 */
describe('a script run with WAIT on a Redis Cluster that failed over', () => {
  let cluster: LocalCluster | undefined;
  let client: RedisClient | undefined;
  afterAll(async () => {
    client?.disconnect();
    await cluster?.stop();
  });

  it('reaches the promoted master (MOVED followed), its writes acknowledged by the new replica', async () => {
    cluster = await startLocalCluster(3, 1);
    client = connectRedis({ redisUrl: cluster.url, redisCluster: true }, 'chatq-test', { autoPipelining: true });
    client.on('error', () => undefined);
    const key = `{replicated-${process.pid}}:n`;
    const replicas = { count: 1, timeoutMs: 1_000 };
    expect(await incr.runReplicated(client, [key], [], replicas)).toEqual({ reply: 1, replicated: true });
    const owner = await cluster.masterOf(key);
    const promoted = await replicaOf(cluster, owner);
    const node = new Redis({ port: promoted });
    await node.call('CLUSTER', 'FAILOVER', 'TAKEOVER');
    node.disconnect();
    await waitFor('the replica promoted', async () => (await cluster!.masterOf(key)) === promoted, 20_000, 100);
    // The old master learns it is a replica now; then each call must reach the new master.
    await waitFor(
      'the old master demoted and syncing from the new one',
      async () => {
        const old = new Redis({ port: owner });
        try {
          return /master_link_status:up/.test(await old.info('replication'));
        } finally {
          old.disconnect();
        }
      },
      20_000,
      100,
    );
    const results = [];
    for (let i = 0; i < 5; i++) results.push(await incr.runReplicated(client, [key], [], replicas));
    expect(results.map((r) => r.reply)).toEqual([2, 3, 4, 5, 6]);
    expect(results.every((r) => r.replicated)).toBe(true);
  });
});
