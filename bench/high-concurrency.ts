/**
 * bench/high-concurrency: many calls in flight in one worker process. 40,000 requests (4,000 users x 10 turns)
 * against a simulator answering in 1-3 s, 2,000 calls in flight: chatq (one `chatq worker` process, enqueue to stored
 * result) next to the plain p-limit loop with the openai SDK doing the same 40,000 calls at the same concurrency, in
 * the same run; and beside that loop, the same loop keeping each user's turns in order (as chatq does, and as a
 * memory endpoint needs: each user's 10 calls one after the other, through the same p-limit). Reports each side's
 * time and the peak resident memory of chatq's worker and of the loop's process.
 * The two run side by side in --rounds rounds (chatq, then the loop, each round): the times are medians, the ratio
 * is the median of the rounds' ratios (each round's is printed too), the peaks are the highest. Prints one JSON line.
 * Also each side's CPU time per request. `--heap-growth-percent N` runs the worker with CHATQ_HEAP_GROWTH_PERCENT=N
 * (unset: its default, which holds the heap's growth at this concurrency). `--cpu-prof DIR` has the worker write a
 * V8 CPU profile into DIR (node --cpu-prof; open it in Chrome's DevTools or `npx speedscope`). `--semi-space-mb N` starts
 * the worker with node --max-semi-space-size=N (V8's young generation: Node 20 grows it to 16 MB a semi-space, Node 24
 * to 64 MB).
 *   npx tsx bench/high-concurrency.ts [--users 4000] [--turns 10] [--concurrency 2000] [--latency-ms 2000]
 *     [--heap-growth-percent N] [--rounds 3]
 *     [--cpu-prof DIR] [--semi-space-mb N]
 */
import { readFileSync } from 'node:fs';
import { startLocalRedis } from '../src/cli/local-redis.js';
import { getBatch } from '../src/shared/batches/read-store.js';
import { createTestEnv, waitForBatch } from '../test/helpers/test-env.js';
import {
  arg,
  chatLines,
  median,
  orderedLoop,
  plainLoop,
  round,
  startFleet,
  startSimulatorProcess,
} from './bench-kit.js';

const USERS = arg('users', 4_000);
const TURNS = arg('turns', 10);
const C = arg('concurrency', 2_000);
const LATENCY_MS = arg('latency-ms', 2_000);
const HEAP_GROWTH = arg('heap-growth-percent', -1);
const ROUNDS = arg('rounds', 3);
const SEMI_SPACE_MB = arg('semi-space-mb', 0);
const REQUESTS = USERS * TURNS;
const profIndex = process.argv.indexOf('--cpu-prof');
const CPU_PROF_DIR = profIndex > 0 ? process.argv[profIndex + 1] : undefined;

/** A process's resident memory (MB), from /proc. */
const rssMb = (pid: number) =>
  Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

/** Samples `read` every 200 ms until stopped: its peak. */
function peakOf(read: () => number): { stop(): number } {
  let peak = 0;
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, read());
    } catch {
      // The process is gone: its peak stands.
    }
  }, 200);
  return {
    stop() {
      clearInterval(timer);
      return peak;
    },
  };
}

const redis = await startLocalRedis({ appendfsync: 'off' });
const sim = await startSimulatorProcess(['--latency-ms', String(LATENCY_MS), '--jitter-ms', String(LATENCY_MS / 2)]);

/** One round of chatq: a fresh prefix and worker, warm, then the 40,000 requests from enqueue to stored result. */
async function chatqRound(): Promise<{ ms: number; cpuUs: number; peakMb: number }> {
  const env = await createTestEnv(redis.url);
  const fleet = await startFleet(
    env,
    1,
    {
      CHATQ_BASE_URL: sim.url,
      CHATQ_CONCURRENCY: String(C),
      ...(HEAP_GROWTH >= 0 ? { CHATQ_HEAP_GROWTH_PERCENT: String(HEAP_GROWTH) } : {}),
    },
    {
      ...(CPU_PROF_DIR ? { cpuProfDir: CPU_PROF_DIR } : {}),
      ...(SEMI_SPACE_MB ? { nodeArgs: [`--max-semi-space-size=${SEMI_SPACE_MB}`] } : {}),
    },
  );
  // A deployment that has called before: the worker is connected and its credentials are proven (the first call of a
  // fresh Redis goes alone, as the probe that proves them: acquire-capacity.lua), before the clock starts.
  const warmUp = await env.submit(chatLines(1, 1));
  await waitForBatch(env, warmUp.batchId, 60_000);
  const workerPeak = peakOf(() => fleet.pids().reduce((sum, pid) => sum + rssMb(pid), 0));
  // The input is ready before the clock starts, as the loops' is.
  const input = chatLines(USERS, TURNS);
  const t0 = Date.now();
  const cpu0 = fleet.cpuMs();
  const submitted = await env.submit(input);
  await waitForBatch(env, submitted.batchId, 1_800_000);
  const ms = Date.now() - t0;
  const cpuUs = ((fleet.cpuMs() - cpu0) * 1000) / REQUESTS;
  const peakMb = workerPeak.stop();
  const batch = await getBatch(env.redis, env.keys, submitted.batchId);
  if (batch?.succeeded !== REQUESTS) throw new Error(`chatq run incomplete: ${JSON.stringify(batch)}`);
  await fleet.stop();
  await env.cleanup();
  return { ms, cpuUs, peakMb };
}

/** One round of a plain loop (`ordered`: each user's turns in order), in this process. */
async function loopRound(ordered: boolean): Promise<{ ms: number; cpuUs: number; peakMb: number }> {
  const loopPeak = peakOf(() => process.memoryUsage().rss / 1024 / 1024);
  const plain = ordered ? await orderedLoop(sim.url, USERS, TURNS, C) : await plainLoop(sim.url, REQUESTS, C);
  const peakMb = loopPeak.stop();
  if (plain.ok !== REQUESTS) throw new Error(`plain loop incomplete: ${JSON.stringify(plain)}`);
  return { ms: plain.ms, cpuUs: (plain.cpuMs * 1000) / plain.ok, peakMb };
}

// The two side by side, round after round (the machine's load drifts): each round's ratio, and their median.
type Side = Awaited<ReturnType<typeof chatqRound>>;
const rounds: { chatq: Side; loop: Side; ordered: Side }[] = [];
for (let i = 0; i < ROUNDS; i++)
  rounds.push({ chatq: await chatqRound(), loop: await loopRound(false), ordered: await loopRound(true) });

await sim.stop();
await redis.stop();
const medianOf = (pick: (r: (typeof rounds)[number]) => number) => median(rounds.map(pick));
console.log(
  JSON.stringify({
    bench: 'high-concurrency',
    requests: REQUESTS,
    users: USERS,
    turns: TURNS,
    concurrency: C,
    latency_ms: `${LATENCY_MS / 2}-${(LATENCY_MS * 3) / 2}`,
    rounds: ROUNDS,
    chatq_s: round(medianOf((r) => r.chatq.ms) / 1000, 1),
    plain_loop_s: round(medianOf((r) => r.loop.ms) / 1000, 1),
    chatq_vs_plain_loop: round(medianOf((r) => r.loop.ms / r.chatq.ms)),
    chatq_vs_plain_loop_rounds: rounds.map((r) => round(r.loop.ms / r.chatq.ms)),
    ordered_loop_s: round(medianOf((r) => r.ordered.ms) / 1000, 1),
    chatq_vs_ordered_loop: round(medianOf((r) => r.ordered.ms / r.chatq.ms)),
    chatq_vs_ordered_loop_rounds: rounds.map((r) => round(r.ordered.ms / r.chatq.ms)),
    chatq_worker_peak_rss_mb: Math.round(Math.max(...rounds.map((r) => r.chatq.peakMb))),
    chatq_worker_cpu_us_per_request: round(
      medianOf((r) => r.chatq.cpuUs),
      1,
    ),
    plain_loop_cpu_us_per_request: round(
      medianOf((r) => r.loop.cpuUs),
      1,
    ),
    ...(HEAP_GROWTH >= 0 ? { heap_growth_percent: HEAP_GROWTH } : {}),
    ...(SEMI_SPACE_MB ? { semi_space_mb: SEMI_SPACE_MB } : {}),
    node: process.version,
    plain_loop_process_peak_rss_mb: Math.round(Math.max(...rounds.map((r) => r.loop.peakMb))),
  }),
);
process.exit(0);
