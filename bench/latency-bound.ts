/**
 * bench/latency-bound: the simulator answers in 200 ms; with C calls in flight the ceiling is C / 0.2 s.
 * Prints one JSON line: chatq's throughput as a fraction of that ceiling, next to the plain p-limit loop's and
 * raw BullMQ's (a processor that only sleeps 200 ms, same concurrency): the queue's own per-job overhead.
 *   npx tsx bench/latency-bound.ts [--concurrency 100] [--requests 10000] [--rounds 3] [--workers 1]
 */
import { getBatch, readBatchRequests } from '../src/shared/batches/read-store.js';
import { createTestEnv, waitForBatch } from '../test/helpers/test-env.js';
import {
  arg,
  chatLines,
  median,
  plainLoop,
  rawBullmq,
  round,
  sleep,
  startFleet,
  startSimulatorProcess,
} from './bench-kit.js';

const C = arg('concurrency', 100);
const REQUESTS = arg('requests', 10000);
const ROUNDS = arg('rounds', 3);
const WORKERS = arg('workers', 1);
const LATENCY_MS = 200;
const ceiling = (C / LATENCY_MS) * 1000;

const sim = await startSimulatorProcess(['--latency-ms', String(LATENCY_MS)]);
const rounds: { chatq: number; steady: number; plain: number; bullmq: number }[] = [];
for (let r = 0; r < ROUNDS; r++) {
  const env = await createTestEnv();
  const fleet = await startFleet(env, WORKERS, {
    CHATQ_BASE_URL: sim.url,
    CHATQ_CONCURRENCY: String(Math.ceil(C / WORKERS)),
  });
  await sleep(1_500);
  const t0 = Date.now();
  // Five times as many users as slots, four turns each: lanes never starve the pool.
  const submitted = await env.submit(chatLines(REQUESTS / 4, 4));
  await waitForBatch(env, submitted.batchId, 600_000);
  const chatq = (REQUESTS / (Date.now() - t0)) * 1000;
  if ((await getBatch(env.redis, env.keys, submitted.batchId))?.succeeded !== REQUESTS)
    throw new Error('incomplete run');
  // Steady state: the rate between the 20th and the 80th percentile of finish times (no start-up, no tail).
  const finished: number[] = [];
  for await (const r of readBatchRequests(env.redis, env.keys, submitted.batchId)) finished.push(r.finishedAt!);
  finished.sort((a, b) => a - b);
  const steady =
    ((0.6 * REQUESTS) / (finished[Math.floor(REQUESTS * 0.8)]! - finished[Math.floor(REQUESTS * 0.2)]!)) * 1000;
  await fleet.stop();
  await env.cleanup();
  const plain = await plainLoop(sim.url, REQUESTS, C);
  rounds.push({ chatq, steady, plain: (plain.ok / plain.ms) * 1000, bullmq: await rawBullmq(REQUESTS, C, LATENCY_MS) });
  process.stderr.write(`round ${r + 1}: ${JSON.stringify(rounds.at(-1))}\n`);
}
await sim.stop();
console.log(
  JSON.stringify({
    bench: 'latency-bound',
    latency_ms: LATENCY_MS,
    concurrency: C,
    worker_processes: WORKERS,
    requests: REQUESTS,
    ceiling_req_per_s: ceiling,
    chatq_req_per_s: round(median(rounds.map((x) => x.chatq)), 1),
    chatq_fraction_of_ceiling: round(median(rounds.map((x) => x.chatq)) / ceiling),
    chatq_steady_state_fraction_of_ceiling: round(median(rounds.map((x) => x.steady)) / ceiling),
    plain_loop_fraction_of_ceiling: round(median(rounds.map((x) => x.plain)) / ceiling),
    raw_bullmq_sleep_fraction_of_ceiling: round(median(rounds.map((x) => x.bullmq)) / ceiling),
  }),
);
process.exit(0);
