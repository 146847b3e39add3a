/**
 * bench/network: 200 calls in flight against a 1 s upstream, with the worker on its own network host and its link to
 * Redis slowed to a 20 ms round trip (a delay proxy) and losing 5 % of its packets (iptables statistic), next to the
 * same run with the worker beside Redis (loopback), in the same run: same Redis, same upstream, same batch. Prints one
 * JSON line with each side's requests per second (medians of the rounds) and their ratio (target >= 0.9). Needs root
 * (network namespaces).
 *   npx tsx bench/network.ts [--users 200] [--turns 5] [--rounds 3]
 */
import { startSimulator } from '../src/simulator/simulator-server.js';
import { delayProxy } from '../test/helpers/delay-proxy.js';
import { chatqOn, netLab, redisOn, type NetHost } from '../test/helpers/net-hosts.js';
import { conversationLines } from '../test/helpers/net-world.js';
import { createTestEnv, waitForBatch } from '../test/helpers/test-env.js';
import { arg, median, round } from './bench-kit.js';

const USERS = arg('users', 200);
const TURNS = arg('turns', 5);
const ROUNDS = arg('rounds', 3);

const lab = await netLab();
const sim = await startSimulator({ latencyMs: 1_000 }, 0, lab.gateway);
try {
  const redisHost = await lab.host('redis');
  const redis = await redisOn(redisHost, ['--bind', redisHost.ip, '127.0.0.1']);
  const workerHost = await lab.host('worker');
  const proxy = await delayProxy(lab.gateway, { host: redisHost.ip, port: 6379 }, 10);
  await workerHost.loss(lab.gateway, 0.05, { port: proxy.port });

  /** One batch through one worker process on `host`, reaching Redis at `redisUrl`: requests per second, upstream repeats. */
  const runOnce = async (host: NetHost, redisUrl: string) => {
    const env = await createTestEnv(redis.url);
    const statsBefore = sim.stats().calls;
    const total = USERS * TURNS;
    const submitted = await env.submit(conversationLines(USERS, TURNS, `n${Date.now()}`));
    const started = Date.now();
    const worker = chatqOn(host, ['worker'], { ...env.env(), REDIS_URL: redisUrl, CHATQ_BASE_URL: sim.url, CHATQ_CONCURRENCY: '200', LOG_LEVEL: 'warn' });
    try {
      const batch = await waitForBatch(env, submitted.batchId, 600_000);
      if (batch.succeeded !== total) throw new Error(`only ${batch.succeeded} of ${total} succeeded\n${worker.output()}`);
      return { rps: total / ((Date.now() - started) / 1000), repeats: sim.stats().calls - statsBefore - total };
    } finally {
      await worker.stop();
      await env.cleanup();
    }
  };

  const network: number[] = [];
  const loopback: number[] = [];
  let repeats = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const slow = await runOnce(workerHost, `redis://${proxy.host}:${proxy.port}`);
    const local = await runOnce(redisHost, 'redis://127.0.0.1:6379');
    network.push(slow.rps);
    loopback.push(local.rps);
    repeats += slow.repeats;
  }
  const dropped = await workerHost.dropped();
  await proxy.close();
  await redis.process.stop('SIGKILL');
  console.log(JSON.stringify({
    bench: 'network',
    requests: USERS * TURNS,
    in_flight: 200,
    upstream_latency_ms: 1_000,
    redis_rtt_ms: 20,
    redis_loss: 0.05,
    rounds: ROUNDS,
    network_rps: round(median(network), 1),
    loopback_rps: round(median(loopback), 1),
    ratio: round(median(network) / median(loopback), 3),
    packets_dropped: dropped,
    upstream_repeats: repeats,
  }));
} finally {
  await sim.close();
  await lab.close();
}
