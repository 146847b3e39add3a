/**
 * bench/hostile-mix: 1,000 ordinary requests from 200 users, with and without 50 hostile lines of every kind in the
 * same batch plus 25 users whose every call may take a million tokens (a model with no known output limit),
 * CHATQ_TPM set, against the simulator (in its own process). Prints one JSON line: the ordinary requests'
 * p50/p99 latency (enqueue to stored result) in both runs and their ratio (target p99 <= 1.2x), the worker's
 * event-loop delay p99 (target <= 50 ms), and what became of every hostile line (a bad line with its reason, or a
 * request that finished with its reason).
 *   npx tsx bench/hostile-mix.ts [--users 200] [--turns 5] [--concurrency 50] [--rounds 3]
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { percentile } from '../src/shared/reports/eval-report.js';
import { readBatchRequests } from '../src/shared/batches/read-store.js';
import { WorkerPool } from '../src/worker/worker-pool.js';
import { createTestEnv, testLogger, waitForBatch } from '../test/helpers/test-env.js';
import { arg, median, round, startSimulatorProcess } from './bench-kit.js';

const USERS = arg('users', 200);
const TURNS = arg('turns', 5);
const C = arg('concurrency', 50);
const ROUNDS = arg('rounds', 3);
const TPM = 2_000_000;
/** Users whose calls each bound a million tokens: without a fair share of the TPM window they would hold everyone back. */
const LARGE_BOUND_USERS = 25;

const ordinary = (): string[] => {
  const lines: string[] = [];
  for (let t = 0; t < TURNS; t++) {
    for (let u = 0; u < USERS; u++)
      lines.push(
        JSON.stringify({
          custom_id: `ok-u${u}-t${t}`,
          user: `user-${u}`,
          model: 'gpt-4o-mini',
          max_tokens: 64,
          messages: [{ role: 'user', content: `turn ${t}: hello from user ${u}` }],
        }),
      );
  }
  return lines;
};

const chat = (id: string, fields: Record<string, unknown>) =>
  JSON.stringify({
    custom_id: id,
    user: `hostile-${id}`,
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: 'hi' }],
    ...fields,
  });

/** Ten kinds, five of each: what the issue found, plus the classic ways a line goes wrong. Each makes a line from its custom_id. */
const HOSTILE_KINDS: Record<string, (id: string) => string> = {
  max_tokens_1e19: (id) => chat(id, { max_tokens: 1e19 }),
  nested_100k_deep: (id) =>
    `{"custom_id":"${id}","user":"h","model":"m","messages":[{"role":"user","content":${'['.repeat(100_000)}${']'.repeat(100_000)}}]}`,
  line_3_mib: (id) => chat(id, { messages: [{ role: 'user', content: 'x '.repeat(1_600_000) }] }),
  text_100k_without_spaces: (id) =>
    chat(id, { max_tokens: 16, messages: [{ role: 'user', content: 'a'.repeat(100_000) }] }),
  backtracking_regex: (id) =>
    chat(id, { max_tokens: 64, messages: [{ role: 'user', content: 'a'.repeat(200) }], expect: { regex: '(a+)+$' } }),
  regex_backreference: (id) => chat(id, { expect: { regex: '(a)\\1' } }),
  json_schema_pattern: (id) => chat(id, { expect: { json: { type: 'string', pattern: '(a+)+$' } } }),
  non_v4_userid: (id) =>
    JSON.stringify({
      custom_id: id,
      userid: '123e4567-e89b-12d3-a456-426614174000',
      model: 'm',
      messages: [{ role: 'user', content: 'x' }],
    }),
  upstream_400: (id) => chat(id, { max_tokens: 16, messages: [{ role: 'user', content: '[fail 400] please' }] }),
  formula_and_escapes: (id) => chat(`=cmd|' /C calc'!A0-${id}\u001b]0;x\u0007`, { max_tokens: 16, model: '@SUM(A1)' }),
};

interface RoundFigures {
  p50: number;
  p99: number;
  loopP99: number;
  seconds: number;
  hostile?: Record<string, Record<string, number>>;
}

async function runOnce(simUrl: string, withHostile: boolean): Promise<RoundFigures> {
  const env = await createTestEnv();
  const large = Array.from({ length: LARGE_BOUND_USERS }, (_, i) => ({
    kind: 'max_tokens_1m_unlisted_model',
    text: chat(`h-large-${i}`, { model: 'house-model-x', max_tokens: 1_048_576 }),
  }));
  const hostile = withHostile
    ? [
        ...Object.entries(HOSTILE_KINDS).flatMap(([kind, make]) =>
          Array.from({ length: 5 }, (_, i) => ({ kind, text: make(`h-${kind}-${i}`) })),
        ),
        ...large,
      ]
    : [];
  const lines = ordinary();
  // Hostile lines spread through the batch, not bunched at one end.
  for (const [i, h] of hostile.entries())
    lines.splice(Math.floor(((i + 1) * lines.length) / (hostile.length + 1)), 0, h.text);
  const kindOfLine = new Map(hostile.map((h) => [lines.indexOf(h.text) + 1, h.kind]));
  const submitted = await env.submit(lines);
  const loop = monitorEventLoopDelay({ resolution: 10 });
  const t0 = Date.now();
  loop.enable();
  const pool = await WorkerPool.start({
    config: env.config({ CHATQ_CONCURRENCY: String(C), CHATQ_TPM: String(TPM) }),
    baseUrl: simUrl,
    logger: testLogger(),
  });
  await waitForBatch(env, submitted.batchId, 600_000);
  loop.disable();
  const seconds = (Date.now() - t0) / 1000;
  await pool.close();

  const latencies: number[] = [];
  const outcome: Record<string, Record<string, number>> = {};
  const tally = (kind: string, what: string) => {
    outcome[kind] ??= {};
    outcome[kind]![what] = (outcome[kind]![what] ?? 0) + 1;
  };
  for await (const r of readBatchRequests(env.redis, env.keys, submitted.batchId)) {
    if (r.customId.startsWith('ok-')) latencies.push(r.finishedAt! - r.createdAt);
    else
      tally(
        kindOfLine.get(r.line) ?? 'unknown',
        r.status === 'succeeded'
          ? r.grade && !r.grade.pass
            ? 'succeeded, graded fail'
            : 'succeeded'
          : `${r.status}: ${r.error?.code}`,
      );
  }
  // Bad lines: each reported with its line number and reason.
  for (const e of submitted.errors)
    tally(kindOfLine.get(e.line) ?? 'unknown', `bad line: ${e.field ?? e.message.split(/[;(:]/)[0]!.trim()}`);
  latencies.sort((a, b) => a - b);
  await env.cleanup();
  return {
    p50: percentile(latencies, 50)!,
    p99: percentile(latencies, 99)!,
    loopP99: loop.percentile(99) / 1e6,
    seconds,
    ...(withHostile ? { hostile: outcome } : {}),
  };
}

const sim = await startSimulatorProcess(['--latency-ms', '40', '--jitter-ms', '20']);
const plain: RoundFigures[] = [];
const mixed: RoundFigures[] = [];
// One run to warm up (JIT, connections), not counted; then the two kinds in alternating order.
await runOnce(sim.url, false);
for (let r = 0; r < ROUNDS; r++) {
  for (const withHostile of r % 2 ? [true, false] : [false, true])
    (withHostile ? mixed : plain).push(await runOnce(sim.url, withHostile));
}
await sim.stop();

const med = (xs: RoundFigures[], k: 'p50' | 'p99' | 'loopP99' | 'seconds') => round(median(xs.map((x) => x[k])), 1);
const hostile = mixed.at(-1)!.hostile!;
const accounted = Object.values(hostile).reduce((a, kinds) => a + Object.values(kinds).reduce((x, y) => x + y, 0), 0);
console.log(
  JSON.stringify({
    bench: 'hostile-mix',
    ordinary_requests: USERS * TURNS,
    users: USERS,
    hostile_lines: Object.keys(HOSTILE_KINDS).length * 5 + LARGE_BOUND_USERS,
    concurrency: C,
    tpm: TPM,
    rounds: ROUNDS,
    ordinary_latency_ms_without_hostile: { p50: med(plain, 'p50'), p99: med(plain, 'p99') },
    ordinary_latency_ms_with_hostile: { p50: med(mixed, 'p50'), p99: med(mixed, 'p99') },
    p99_ratio: round(med(mixed, 'p99') / med(plain, 'p99')),
    worker_event_loop_delay_p99_ms: { without_hostile: med(plain, 'loopP99'), with_hostile: med(mixed, 'loopP99') },
    run_seconds: { without_hostile: med(plain, 'seconds'), with_hostile: med(mixed, 'seconds') },
    hostile_accounted: accounted,
    hostile_outcomes: hostile,
  }),
);
process.exit(0);
