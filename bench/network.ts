/**
 * bench/network: 200 calls in flight against a 1 s upstream, with the worker on its own network host and its link to
 * Redis slowed to a 20 ms round trip (a delay proxy) and losing 5 % of its packets (iptables statistic), next to the
 * same run with the worker beside Redis (loopback), in the same run: same Redis, same upstream, same batch. Prints one
 * JSON line with each side's throughput while every slot is busy (requests per second between the 10th and the 90th
 * percentile of completions: neither the process's start nor the last users' chains), its ratio (target >= 0.9), and
 * the whole run's (a batch's makespan: its start, and its slowest user's chain of turns, each turn's round trip a
 * chance to lose a packet and wait 200 ms or more for TCP to send it again). Medians of the rounds. Needs root
 * (network namespaces).
 *   npx tsx bench/network.ts [--users 200] [--turns 20] [--rounds 3] [--rtt-ms 20] [--loss 0.05]
 */
import { startSimulator } from '../src/simulator/simulator-server.js';
import { delayProxy } from '../test/helpers/delay-proxy.js';
import { chatqOn, netLab, redisOn, type NetHost } from '../test/helpers/net-hosts.js';
import { conversationLines } from '../test/helpers/net-world.js';
import { createTestEnv, waitFor, type TestEnv } from '../test/helpers/test-env.js';
import { arg, median, round } from './bench-kit.js';

const USERS = arg('users', 200);
const TURNS = arg('turns', 20);
const ROUNDS = arg('rounds', 3);
const RTT_MS = arg('rtt-ms', 20);
const LOSS = arg('loss', 0.05);

const lab = await netLab();
const sim = await startSimulator({ latencyMs: 1_000 }, 0, lab.gateway);
const stops: (() => Promise<unknown>)[] = [];
try {
  const redisHost = await lab.host('redis');
  const redis = await redisOn(redisHost, ['--bind', redisHost.ip, '127.0.0.1']);
  stops.push(() => redis.process.stop('SIGKILL'));
  const workerHost = await lab.host('worker');
  const proxy = await delayProxy(lab.gateway, { host: redisHost.ip, port: 6379 }, RTT_MS / 2);
  stops.push(() => proxy.close());
  if (LOSS > 0) await workerHost.loss(lab.gateway, LOSS, { port: proxy.port });

  /** Polls the batch until it ends: when each tenth of its requests was done (ms since `started`). */
  const completions = async (env: TestEnv, batchId: string, total: number, started: number) => {
    const tenths: number[] = [];
    for (const until = started + 300_000; Date.now() < until; await new Promise((r) => setTimeout(r, 50))) {
      const batch = await env.batch(batchId);
      while (tenths.length <= 10 && batch.succeeded + batch.failed >= (tenths.length * total) / 10)
        tenths.push(Date.now() - started);
      if (batch.status === 'completed') return { batch, tenths };
    }
    throw new Error(`batch ${batchId} did not finish: ${JSON.stringify(await env.batch(batchId))}`);
  };

  /** One batch through one worker process on `host`, reaching Redis at `redisUrl`: requests per second, upstream repeats. */
  const runOnce = async (host: NetHost, redisUrl: string) => {
    const env = await createTestEnv(redis.url);
    const statsBefore = sim.stats().calls;
    const total = USERS * TURNS;
    const submitted = await env.submit(conversationLines(USERS, TURNS, `n${Date.now()}`));
    const started = Date.now();
    const worker = chatqOn(host, ['worker'], {
      ...env.env(),
      REDIS_URL: redisUrl,
      CHATQ_BASE_URL: sim.url,
      CHATQ_CONCURRENCY: '200',
      LOG_LEVEL: 'warn',
    });
    try {
      await waitFor('the first call', async () => sim.stats().calls > statsBefore, 60_000, 5);
      const firstCallS = (Date.now() - started) / 1000;
      const { batch, tenths } = await completions(env, submitted.batchId, total, started).catch((err: Error) => {
        throw new Error(`${err.message}\n${worker.output()}`);
      });
      if (batch.succeeded !== total)
        throw new Error(`only ${batch.succeeded} of ${total} succeeded\n${worker.output()}`);
      const seconds = (Date.now() - started) / 1000;
      return {
        steadyRps: (0.8 * total) / ((tenths[9]! - tenths[1]!) / 1000),
        rps: total / seconds,
        firstCallS,
        repeats: sim.stats().calls - statsBefore - total,
      };
    } finally {
      await worker.stop();
      await env.cleanup();
    }
  };

  const network: Awaited<ReturnType<typeof runOnce>>[] = [];
  const loopback: Awaited<ReturnType<typeof runOnce>>[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    network.push(await runOnce(workerHost, `redis://${proxy.host}:${proxy.port}`));
    loopback.push(await runOnce(redisHost, 'redis://127.0.0.1:6379'));
  }
  const med = (runs: typeof network, figure: 'steadyRps' | 'rps' | 'firstCallS') =>
    median(runs.map((run) => run[figure]));
  const dropped = await workerHost.dropped();
  console.log(
    JSON.stringify({
      bench: 'network',
      requests: USERS * TURNS,
      in_flight: 200,
      upstream_latency_ms: 1_000,
      redis_rtt_ms: RTT_MS,
      redis_loss: LOSS,
      rounds: ROUNDS,
      network_rps: round(med(network, 'steadyRps'), 1),
      loopback_rps: round(med(loopback, 'steadyRps'), 1),
      ratio: round(med(network, 'steadyRps') / med(loopback, 'steadyRps'), 3),
      network_whole_run_rps: round(med(network, 'rps'), 1),
      loopback_whole_run_rps: round(med(loopback, 'rps'), 1),
      whole_run_ratio: round(med(network, 'rps') / med(loopback, 'rps'), 3),
      network_first_call_s: round(med(network, 'firstCallS'), 2),
      loopback_first_call_s: round(med(loopback, 'firstCallS'), 2),
      packets_dropped: dropped,
      upstream_repeats: network.reduce((sum, run) => sum + run.repeats, 0),
    }),
  );
} finally {
  for (const stop of stops) await stop();
  await sim.close();
  await lab.close();
}
