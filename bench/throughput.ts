/**
 * bench/throughput: requests/s end to end (enqueue to stored result) against the simulator with no added latency,
 * next to (a) the plain p-limit loop with the same openai client, simulator and concurrency (with the SDK's default
 * fetch, as a user's script would have it, and with chatq's transport), and (b) raw BullMQ with a no-op processor;
 * and the CPU time each side's process spends per request (chatq's worker processes; the loop's own process).
 * The simulator runs in its own process for all. chatq runs twice per round: as it ships (tracing off), and traced
 * (OpenTelemetry over OTLP/HTTP to a local receiver in its own process, 10 % of requests sampled, the import and the
 * workers), the two in turns going first. Prints one JSON line.
 *   npx tsx bench/throughput.ts [--requests 20000] [--concurrency 100] [--rounds 3]
 */
import { getBatch } from '../src/shared/batches/read-store.js';
import { startTracing, stopTracing } from '../src/shared/tracing.js';
import { createTestEnv, waitForBatch } from '../test/helpers/test-env.js';
import {
  arg,
  chatLines,
  median,
  plainLoop,
  rawBullmq,
  round,
  startFleet,
  startOtlpSinkProcess,
  startSimulatorProcess,
  transportFetch,
} from './bench-kit.js';

const REQUESTS = arg('requests', 20_000);
const CONCURRENCY = arg('concurrency', 100);
const ROUNDS = arg('rounds', 3);
const WORKERS = arg('workers', 1);

const receiver = await startOtlpSinkProcess();
/** What the traced runs set, for the workers and the import alike. */
const TRACED = {
  OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
  OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
  OTEL_TRACES_SAMPLER_ARG: '0.1',
};

/** One chatq run: its requests/s, and its worker processes' CPU time per request (µs). */
async function chatqRun(simUrl: string, traced = false): Promise<{ perS: number; cpuUs: number }> {
  const env = await createTestEnv();
  const fleet = await startFleet(env, WORKERS, {
    CHATQ_BASE_URL: simUrl,
    CHATQ_CONCURRENCY: String(Math.ceil(CONCURRENCY / WORKERS)),
    ...(traced ? TRACED : {}),
  });
  if (traced) await startTracing('bench', { ...process.env, ...TRACED });
  // Let the workers connect before the clock starts.
  await new Promise((r) => setTimeout(r, 1_500));
  const t0 = Date.now();
  const cpu0 = fleet.cpuMs();
  const submitted = await env.submit(chatLines(REQUESTS / 10, 10));
  await waitForBatch(env, submitted.batchId, 600_000);
  const ms = Date.now() - t0;
  const cpuUs = ((fleet.cpuMs() - cpu0) * 1000) / REQUESTS;
  await stopTracing();
  const b = await getBatch(env.redis, env.keys, submitted.batchId);
  if (b?.succeeded !== REQUESTS) throw new Error(`chatq run incomplete: ${JSON.stringify(b)}`);
  await fleet.stop();
  await env.cleanup();
  return { perS: (REQUESTS / ms) * 1000, cpuUs };
}

const sim = await startSimulatorProcess([]);
interface Round {
  chatq: number;
  chatqTraced: number;
  plain: number;
  plainFast: number;
  bullmq: number;
  /** CPU time per request (µs): chatq's workers, the loop, the loop with chatq's transport. */
  chatqCpu: number;
  chatqTracedCpu: number;
  plainCpu: number;
  plainFastCpu: number;
}
const rounds: Round[] = [];
for (let r = 0; r < ROUNDS; r++) {
  const plain = await plainLoop(sim.url, REQUESTS, CONCURRENCY);
  const plainFast = await plainLoop(sim.url, REQUESTS, CONCURRENCY, Infinity, transportFetch(sim.url, CONCURRENCY));
  // Traced and untraced take turns going first (a run after another may find Redis warmer or the machine busier).
  const first = await chatqRun(sim.url, r % 2 === 1);
  const second = await chatqRun(sim.url, r % 2 === 0);
  const [chatq, traced] = r % 2 === 0 ? [first, second] : [second, first];
  const bullmq = await rawBullmq(REQUESTS, CONCURRENCY);
  rounds.push({
    chatq: chatq.perS,
    chatqTraced: traced.perS,
    plain: (plain.ok / plain.ms) * 1000,
    plainFast: (plainFast.ok / plainFast.ms) * 1000,
    bullmq,
    chatqCpu: chatq.cpuUs,
    chatqTracedCpu: traced.cpuUs,
    plainCpu: (plain.cpuMs * 1000) / plain.ok,
    plainFastCpu: (plainFast.cpuMs * 1000) / plainFast.ok,
  });
  process.stderr.write(`round ${r + 1}: ${JSON.stringify(rounds.at(-1))}\n`);
}
await sim.stop();
const received = await receiver.stop();
const m = (k: keyof Round) => median(rounds.map((x) => x[k]));
console.log(
  JSON.stringify({
    bench: 'throughput',
    requests: REQUESTS,
    concurrency: CONCURRENCY,
    worker_processes: WORKERS,
    rounds: ROUNDS,
    chatq_req_per_s: round(m('chatq'), 1),
    plain_p_limit_loop_req_per_s: round(m('plain'), 1),
    plain_loop_with_chatq_transport_req_per_s: round(m('plainFast'), 1),
    raw_bullmq_noop_jobs_per_s: round(m('bullmq'), 1),
    chatq_vs_plain_loop: round(median(rounds.map((x) => x.chatq / x.plain))),
    chatq_vs_plain_loop_with_chatq_transport: round(median(rounds.map((x) => x.chatq / x.plainFast))),
    chatq_worker_cpu_us_per_request: round(m('chatqCpu'), 1),
    plain_loop_cpu_us_per_request: round(m('plainCpu'), 1),
    plain_loop_with_chatq_transport_cpu_us_per_request: round(m('plainFastCpu'), 1),
    chatq_worker_cpu_vs_transport_loop: round(median(rounds.map((x) => x.chatqCpu / x.plainFastCpu))),
    chatq_traced_req_per_s: round(m('chatqTraced'), 1),
    chatq_traced_vs_untraced: round(median(rounds.map((x) => x.chatqTraced / x.chatq))),
    chatq_traced_worker_cpu_us_per_request: round(m('chatqTracedCpu'), 1),
    traced_sample_ratio: 0.1,
    spans_received: received.spans,
    traces_received: received.traces,
    per_round: rounds.map((x) => ({
      chatq: round(x.chatq, 1),
      chatq_traced: round(x.chatqTraced, 1),
      plain: round(x.plain, 1),
      plain_fast: round(x.plainFast, 1),
      bullmq: round(x.bullmq, 1),
      chatq_cpu_us: round(x.chatqCpu, 1),
      plain_fast_cpu_us: round(x.plainFastCpu, 1),
    })),
  }),
);
process.exit(0);
