/**
 * bench/wait-replicas: what CHATQ_REDIS_WAIT_REPLICAS=1 costs. A master and its replica (Debian's redis-server, on
 * loopback), the simulator in its own process with no added latency; the same batch through one worker with
 * CHATQ_REDIS_WAIT_REPLICAS=0 and =1, alternating, in the same run. Prints one JSON line: requests/s of each (medians)
 * and their ratio.
 *   npx tsx bench/wait-replicas.ts [--requests 10000] [--concurrency 100] [--rounds 3]
 */
import { spawn } from 'node:child_process';
import { freePort, startLocalRedis } from '../src/cli/local-redis.js';
import { redisAnswers } from '../src/shared/redis/redis-probe.js';
import { createTestEnv, waitFor, waitForBatch } from '../test/helpers/test-env.js';
import { arg, chatLines, median, round, startFleet, startSimulatorProcess } from './bench-kit.js';

const REQUESTS = arg('requests', 10_000);
const CONCURRENCY = arg('concurrency', 100);
const ROUNDS = arg('rounds', 3);

const master = await startLocalRedis({ appendfsync: 'off' });
const replicaPort = await freePort();
const replica = spawn(
  'redis-server',
  [
    '--port',
    String(replicaPort),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
    '--replicaof',
    '127.0.0.1',
    String(master.port),
  ],
  { stdio: 'ignore' },
);
const sim = await startSimulatorProcess([]);
try {
  const probe = await createTestEnv(master.url);
  await waitFor(
    'the replica',
    async () =>
      (await redisAnswers(`redis://127.0.0.1:${replicaPort}`)) &&
      /connected_slaves:1/.test(await probe.redis.info('replication')),
    20_000,
    200,
  );
  await probe.cleanup();
  const runOnce = async (wait: string) => {
    const env = await createTestEnv(master.url);
    const fleet = await startFleet(env, 1, {
      CHATQ_BASE_URL: sim.url,
      CHATQ_CONCURRENCY: String(CONCURRENCY),
      CHATQ_REDIS_WAIT_REPLICAS: wait,
    });
    await new Promise((r) => setTimeout(r, 1_500));
    const t0 = Date.now();
    const submitted = await env.submit(chatLines(REQUESTS / 10, 10));
    const batch = await waitForBatch(env, submitted.batchId, 600_000);
    const rps = (REQUESTS / (Date.now() - t0)) * 1000;
    if (batch.succeeded !== REQUESTS) throw new Error(`incomplete: ${JSON.stringify(batch)}`);
    await fleet.stop();
    await env.cleanup();
    return rps;
  };
  const without: number[] = [];
  const withWait: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    without.push(await runOnce('0'));
    withWait.push(await runOnce('1'));
  }
  console.log(
    JSON.stringify({
      bench: 'wait-replicas',
      requests: REQUESTS,
      concurrency: CONCURRENCY,
      rounds: ROUNDS,
      rps_without_wait: round(median(without), 1),
      rps_wait_1_replica: round(median(withWait), 1),
      ratio: round(median(withWait) / median(without), 3),
    }),
  );
} finally {
  await sim.stop();
  replica.kill('SIGKILL');
  await master.stop();
}
