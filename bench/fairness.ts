/**
 * bench/fairness: one user with 5,000 turns and 1,000 users with one turn each. How long do the light users
 * wait (enqueue to result), against the same run without the heavy user? Lanes keep the heavy user to one
 * slot at a time, so the light users should barely notice it. Prints one JSON line (p50/p95/max, ms).
 *   npx tsx bench/fairness.ts [--heavy 5000] [--light 1000] [--concurrency 50]
 */
import { readBatchRequests } from '../src/shared/batches/read-store.js';
import { waitForBatch } from '../test/helpers/test-env.js';
import { arg, round, startSimulatorProcess, withWorker } from './bench-kit.js';
import { percentile } from '../src/shared/reports/eval-report.js';

const HEAVY = arg('heavy', 5000);
const LIGHT = arg('light', 1000);
const C = arg('concurrency', 50);

const line = (user: string, i: number) =>
  JSON.stringify({
    custom_id: `${user}-${i}`,
    user,
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: `[seq ${i}] hello` }],
  });

const lightWaits = (simUrl: string, withHeavy: boolean) =>
  withWorker({ CHATQ_BASE_URL: simUrl, CHATQ_CONCURRENCY: String(C) }, async (env) => {
    const heavy = withHeavy
      ? await env.submit(Array.from({ length: HEAVY }, (_, i) => line('heavy-user', i)))
      : undefined;
    const light = await env.submit(Array.from({ length: LIGHT }, (_, i) => line(`light-${i}`, 0)));
    await waitForBatch(env, light.batchId, 600_000);
    const waits: number[] = [];
    for await (const r of readBatchRequests(env.redis, env.keys, light.batchId))
      waits.push(r.finishedAt! - r.createdAt);
    waits.sort((a, b) => a - b);
    const heavyDone = heavy ? (await env.batch(heavy.batchId)).succeeded : 0;
    return { p50: percentile(waits, 50)!, p95: percentile(waits, 95)!, max: waits.at(-1)!, heavyDone };
  });

const sim = await startSimulatorProcess(['--latency-ms', '20']);
const alone = await lightWaits(sim.url, false);
const mixed = await lightWaits(sim.url, true);
await sim.stop();
console.log(
  JSON.stringify({
    bench: 'fairness',
    heavy_user_turns: HEAVY,
    light_users: LIGHT,
    concurrency: C,
    upstream_latency_ms: 20,
    light_wait_ms_alone: { p50: alone.p50, p95: alone.p95, max: alone.max },
    light_wait_ms_with_heavy_user: { p50: mixed.p50, p95: mixed.p95, max: mixed.max },
    p95_ratio: round(mixed.p95 / alone.p95),
    heavy_turns_done_when_light_users_finished: mixed.heavyDone,
  }),
);
process.exit(0);
