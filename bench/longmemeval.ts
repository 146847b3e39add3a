/**
 * bench/longmemeval: a file of LongMemEval_S's shape and size (bench/synthetic-longmemeval.ts: 500 instances of 50
 * sessions of 10 turns, ~115k tokens each, ~265 MB) run end to end: `chatq enqueue` (the producer) and one `chatq
 * worker`, each in a process of its own, the simulator in another; graded by LongMemEval's judge, against the same
 * calls without grading (--grader none), in the same run. Then `chatq estimate` on the same file, and on a file of
 * LongMemEval_M's shape (500 sessions an instance; --m-instances of them): its time and peak RSS (it streams: flat).
 * Prints one JSON line: each run's time, calls, calls/s, the producer's and the worker's peak RSS, Redis's peak
 * used_memory beyond where it began, against the file's bytes; each estimate's time and peak RSS.
 *   npx tsx bench/longmemeval.ts [--instances 500] [--m-instances 40] [--concurrency 200] [--latency-ms 100]
 */
import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, createTestEnv, type TestEnv, waitForBatch } from '../test/helpers/test-env.js';
import { arg, round, startSimulatorProcess } from './bench-kit.js';
import { M_SHAPE, S_SHAPE, writeLongMemEvalFile } from './synthetic-longmemeval.js';

const INSTANCES = arg('instances', 500);
const M_INSTANCES = arg('m-instances', 40);
const C = arg('concurrency', 200);
const LATENCY = arg('latency-ms', 100);
const MODEL = 'gpt-4o-mini';
const mb = (bytes: number) => round(bytes / 1024 / 1024, 1);

/** A process's peak resident memory so far (bytes), from /proc (VmHWM); 0 once it is gone. */
function peakRss(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** A `chatq` command in its own process: its stdout, time and peak RSS (sampled until it exits). */
function chatq(args: string[], env: Record<string, string>) {
  const t0 = performance.now();
  const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  let peak = 0;
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const sampler = setInterval(() => (peak = Math.max(peak, peakRss(child.pid!))), 100);
  const done = new Promise<{ out: string; s: number; peakRss: number }>((resolve) =>
    child.once('exit', () => {
      clearInterval(sampler);
      resolve({ out, s: (performance.now() - t0) / 1000, peakRss: peak });
    }),
  );
  return { child, done, peak: () => Math.max(peak, peakRss(child.pid!)) };
}

/** Redis's used_memory now (bytes). */
const usedMemory = async (env: TestEnv) => Number(/used_memory:(\d+)/.exec(await env.redis.info('memory'))![1]);

/** One run of the file: `chatq enqueue` and a `chatq worker`, until the batch has ended. */
async function run(path: string, grader: 'longmemeval' | 'none', simUrl: string) {
  const env = await createTestEnv();
  const vars = env.env({ LOG_LEVEL: 'error', CHATQ_BASE_URL: simUrl, CHATQ_CONCURRENCY: String(C) });
  const worker = chatq(['worker'], vars);
  const redisBefore = await usedMemory(env);
  let redisPeak = redisBefore;
  const redisSampler = setInterval(async () => {
    redisPeak = Math.max(redisPeak, await usedMemory(env).catch(() => 0));
  }, 500);
  const t0 = performance.now();
  const producer = chatq(['enqueue', path, '--model', MODEL, '--grader', grader], vars);
  const enqueued = await producer.done;
  const batchId = /batch_[0-9a-f]+/.exec(enqueued.out)![0];
  const batch = await waitForBatch(env, batchId, 3_600_000);
  const s = (performance.now() - t0) / 1000;
  clearInterval(redisSampler);
  const workerPeak = worker.peak();
  worker.child.kill('SIGTERM');
  await worker.done;
  const calls =
    batch.succeeded + batch.failed + (grader === 'none' ? 0 : batch.evalPass + batch.evalFail + batch.evalUngraded);
  await env.cleanup();
  return {
    s: round(s, 1),
    requests: batch.succeeded + batch.failed,
    grading_calls: calls - batch.succeeded - batch.failed,
    calls_per_s: round(calls / s, 1),
    producer_peak_rss_mb: mb(enqueued.peakRss),
    worker_peak_rss_mb: mb(workerPeak),
    redis_peak_mb: mb(redisPeak - redisBefore),
  };
}

async function estimate(path: string) {
  const env = await createTestEnv();
  const r = await chatq(['estimate', path, '--model', MODEL, '--json'], env.env({ LOG_LEVEL: 'error' })).done;
  await env.cleanup();
  const e = JSON.parse(r.out.trim().split('\n').at(-1)!) as { requests: number; promptTokens?: number };
  return { s: round(r.s, 1), peak_rss_mb: mb(r.peakRss), requests: e.requests };
}

const sPath = join(tmpdir(), `chatq-bench-lme-s-${process.pid}.json`);
const mPath = join(tmpdir(), `chatq-bench-lme-m-${process.pid}.json`);
const sBytes = writeLongMemEvalFile(sPath, INSTANCES, S_SHAPE);
const sim = await startSimulatorProcess(['--latency-ms', String(LATENCY)]);
try {
  const graded = await run(sPath, 'longmemeval', sim.url);
  const baseline = await run(sPath, 'none', sim.url);
  const sEstimate = await estimate(sPath);
  const mBytes = writeLongMemEvalFile(mPath, M_INSTANCES, M_SHAPE);
  const mEstimate = await estimate(mPath);
  console.log(
    JSON.stringify({
      bench: 'longmemeval',
      s_file: { instances: INSTANCES, mb: mb(sBytes) },
      concurrency: C,
      upstream_latency_ms: LATENCY,
      graded,
      without_grading: baseline,
      time_ratio: round(graded.s / baseline.s, 2),
      redis_peak_per_file_byte: round((graded.redis_peak_mb * 1024 * 1024) / sBytes, 2),
      estimate_s: sEstimate,
      estimate_m: { instances: M_INSTANCES, mb: mb(mBytes), ...mEstimate },
    }),
  );
} finally {
  await sim.stop();
  rmSync(sPath, { force: true });
  rmSync(mPath, { force: true });
}
process.exit(0);
