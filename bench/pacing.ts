/**
 * bench/pacing: 1,000 users x 5 turns with a 2 s turn gap, against the same run without a gap (simulator latency
 * 200 ms, C = 50, one worker process). With users >= slots x gap / latency, the waiting turns (delayed jobs, no slot
 * held) leave the slots busy with other users: throughput should stay >= 0.9 of the run without a gap. Also the
 * shortest gap the simulator saw between a user's calls. Prints one JSON line.
 *   npx tsx bench/pacing.ts [--users 1000] [--turns 5] [--gap-ms 2000] [--latency-ms 200] [--concurrency 50]
 */
import { getBatch } from '../src/shared/batches/read-store.js';
import { createTestEnv, waitForBatch } from '../test/helpers/test-env.js';
import { arg, round, sleep, startFleet, startSimulatorProcess } from './bench-kit.js';

const USERS = arg('users', 1000);
const TURNS = arg('turns', 5);
const GAP = arg('gap-ms', 2000);
const LATENCY = arg('latency-ms', 200);
const C = arg('concurrency', 50);

const scripts = (gap: number) =>
  Array.from({ length: USERS }, (_, u) =>
    JSON.stringify({
      script_id: `s${u}`,
      user: `pace-${u}`,
      model: 'gpt-4o-mini',
      ...(gap ? { turn_gap_ms: gap } : {}),
      turns: Array.from({ length: TURNS }, (_, t) => `[seq ${t}] turn ${t}`),
    }),
  );

async function run(gap: number): Promise<{ perSecond: number; minGapMs: number | null }> {
  const sim = await startSimulatorProcess(['--latency-ms', String(LATENCY)]);
  const env = await createTestEnv();
  const fleet = await startFleet(env, 1, { CHATQ_BASE_URL: sim.url, CHATQ_CONCURRENCY: String(C) });
  await sleep(1_000);
  const t0 = Date.now();
  const { batchId } = await env.submit(scripts(gap));
  await waitForBatch(env, batchId, 900_000);
  const seconds = ((await getBatch(env.redis, env.keys, batchId))!.completedAt! - t0) / 1000;
  const stats = (await (await fetch(sim.url.replace(/\/v1$/, '/_sim/stats'))).json()) as {
    users: Record<string, { minGapMs: number | null }>;
  };
  const gaps = Object.values(stats.users)
    .map((u) => u.minGapMs)
    .filter((g): g is number => g !== null);
  await fleet.stop();
  await env.cleanup();
  await sim.stop();
  return { perSecond: (USERS * TURNS) / seconds, minGapMs: gaps.length ? Math.min(...gaps) : null };
}

const without = await run(0);
const paced = await run(GAP);
console.log(
  JSON.stringify({
    bench: 'pacing',
    users: USERS,
    turns: TURNS,
    turn_gap_ms: GAP,
    upstream_latency_ms: LATENCY,
    concurrency: C,
    req_per_s_without_gap: round(without.perSecond, 1),
    req_per_s_with_gap: round(paced.perSecond, 1),
    throughput_ratio: round(paced.perSecond / without.perSecond),
    shortest_gap_seen_ms: paced.minGapMs,
  }),
);
process.exit(0);
