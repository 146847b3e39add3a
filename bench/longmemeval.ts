/**
 * bench/longmemeval: a synthetic 500-instance file in LongMemEval's format (bench/synthetic-longmemeval.ts) run end to
 * end against the simulator (ingestion: one call per session; questions; judging), against the same calls without
 * judging (the instances' calls as plain chat lines, no expectations), same run, same worker settings. Prints one
 * JSON line: each run's time, calls, tokens and cost (answers, grading), and the judged run's accuracy by type.
 *   npx tsx bench/longmemeval.ts [--instances 500] [--sessions 10] [--concurrency 50] [--latency-ms 100]
 */
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { parseInput } from '../src/producer/parse-input.js';
import { getUsage } from '../src/shared/batches/read-store.js';
import { evaluateBatch } from '../src/shared/reports/eval-report.js';
import { foldUsage } from '../src/shared/usage/usage-fold.js';
import { waitForBatch, type TestEnv } from '../test/helpers/test-env.js';
import { arg, round, startSimulatorProcess, withWorker } from './bench-kit.js';
import { writeLongMemEvalFile } from './synthetic-longmemeval.js';

const INSTANCES = arg('instances', 500);
const SESSIONS = arg('sessions', 10);
const C = arg('concurrency', 50);
const LATENCY = arg('latency-ms', 100);
const MODEL = 'gpt-4o-mini';

const path = join(tmpdir(), `chatq-bench-lme-${process.pid}.json`);
const bytes = writeLongMemEvalFile(path, INSTANCES, { sessions: SESSIONS });
const text = readFileSync(path, 'utf8');
rmSync(path);

/** The same calls as chat lines without expectations: what the run costs without judging. */
async function plainLines(): Promise<string[]> {
  const lines: string[] = [];
  for await (const parsed of parseInput(Readable.from([text]), { source: 'bench', defaultModel: MODEL, runSalt: 'x' }))
    if (parsed.ok)
      for (const d of parsed.drafts) lines.push(JSON.stringify({ custom_id: d.customId, userid: d.userid, ...d.body }));
  return lines;
}

async function run(env: TestEnv, input: string | string[]) {
  const t0 = performance.now();
  const b = await env.submit(input, { source: 'synthetic-longmemeval.json', defaultModel: MODEL });
  const batch = await waitForBatch(env, b.batchId, 1_800_000);
  const s = (performance.now() - t0) / 1000;
  await foldUsage(env.redis, env.keys);
  const usage = await getUsage(env.redis, env.keys, 'default', 'batch', b.batchId);
  return { s, batch, usage };
}

const figures = (r: Awaited<ReturnType<typeof run>>) => ({
  s: round(r.s, 1),
  requests: r.batch.succeeded,
  grading_calls: r.usage.grading_calls,
  total_tokens: r.usage.total_tokens,
  answers_usd: round((r.usage.cost_nano - r.usage.grading_cost_nano) / 1e9, 4),
  grading_usd: round(r.usage.grading_cost_nano / 1e9, 4),
});

const sim = await startSimulatorProcess(['--latency-ms', String(LATENCY)]);
const vars = { CHATQ_BASE_URL: sim.url, CHATQ_CONCURRENCY: String(C) };
const judged = await withWorker(vars, async (env) => {
  const r = await run(env, text);
  return { r, accuracy: await evaluateBatch(env.redis, env.keys, r.batch) };
});
const baseline = await withWorker(vars, async (env) => run(env, await plainLines()));
await sim.stop();
console.log(
  JSON.stringify({
    bench: 'longmemeval',
    instances: INSTANCES,
    sessions_per_instance: SESSIONS,
    file_mb: round(bytes / 1024 / 1024, 1),
    concurrency: C,
    upstream_latency_ms: LATENCY,
    judged: figures(judged.r),
    without_judging: figures(baseline),
    time_ratio: round(judged.r.s / baseline.s, 2),
    accuracy: {
      overall: round(judged.accuracy.passRate ?? 0, 3),
      by_type: Object.fromEntries(
        Object.entries(judged.accuracy.byTag).map(([t, c]) => [t, `${c.passed}/${c.passed + c.failed + c.ungraded}`]),
      ),
    },
  }),
);
process.exit(0);
