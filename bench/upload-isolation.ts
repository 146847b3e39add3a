/**
 * bench/upload-isolation: one project's small upload and batch (10 chat lines), alone and while another project
 * uploads a hostile memory-benchmark file (one JSON-array item of 20 million empty arrays, 60 MB), through the HTTP API
 * (`chatq serve`'s, in this process) with a worker pool and the simulator. Prints one JSON line: the small run's
 * median time alone and, run after run while the upload lasts, beside it (the ratio of medians, target <= 2, and of the
 * worst), the event loop's longest stall meanwhile, what the hostile upload got and how long it took, and this process's peak
 * RSS.
 *   npx tsx bench/upload-isolation.ts [--rounds 5] [--arrays 20000000]
 */
import { spawn } from 'node:child_process';
import OpenAI from 'openai';
import { startApiService } from '../src/cli/api-service.js';
import { startSimulator } from '../src/simulator/simulator-server.js';
import { WorkerPool } from '../src/worker/worker-pool.js';
import { chatLines, createBatch } from '../test/helpers/api-batches.js';
import { createTestEnv, testLogger, waitFor } from '../test/helpers/test-env.js';
import { arg, median, round } from './bench-kit.js';

const ROUNDS = arg('rounds', 5);
const ARRAYS = arg('arrays', 20_000_000);

const env = await createTestEnv();
const sim = await startSimulator({});
const config = env.config({ CHATQ_API_TOKENS: 'alpha:tok-alpha,beta:tok-beta', CHATQ_MODEL: 'gpt-4o-mini' });
const pool = await WorkerPool.start({ config, baseUrl: sim.url, logger: testLogger() });
const api = await startApiService(config, testLogger(), 0);
const client = (token: string) =>
  new OpenAI({ baseURL: `${api.url}/v1`, apiKey: token, maxRetries: 0, timeout: 600_000 });
let peakRss = 0;
const sampler = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
}, 50);

/** Beta's small upload and its batch, to completion: ms. */
async function smallRun(): Promise<number> {
  const beta = client('tok-beta');
  const t0 = performance.now();
  const batch = await createBatch(beta, chatLines(10), 'small.jsonl');
  await waitFor(
    'the small batch',
    async () => (await beta.batches.retrieve(batch.id)).status === 'completed',
    600_000,
    20,
  );
  return performance.now() - t0;
}

/**
 * Alpha's hostile upload, from a process of its own (as another client would be): one instance whose haystack is
 * ARRAYS empty arrays, written to the socket as it is made (never held whole). Resolves with the HTTP status.
 */
function hostileUpload(): Promise<{ status: string; ms: number }> {
  const script = `
    const http = require('node:http');
    const b = 'chatq-bench-boundary';
    const req = http.request(process.argv[1] + '/v1/files', { method: 'POST', headers: {
      authorization: 'Bearer tok-alpha', 'content-type': 'multipart/form-data; boundary=' + b } }, (res) => {
      res.resume(); res.on('end', () => console.log(res.statusCode)); });
    req.write('--' + b + '\\r\\ncontent-disposition: form-data; name="purpose"\\r\\n\\r\\nbatch\\r\\n--' + b +
      '\\r\\ncontent-disposition: form-data; name="file"; filename="hostile.json"\\r\\n\\r\\n');
    req.write('[{"question_id":"q","question_type":"multi-session","question":"?","answer":"a","haystack_dates":[],"haystack_sessions":[[]');
    const run = ',[]'.repeat(100000);
    let left = Number(process.argv[2]);
    (function more() {
      while (left > 0) { left -= 100000; if (!req.write(run)) return req.once('drain', more); }
      req.end(']}]\\r\\n--' + b + '--\\r\\n');
    })();`;
  const t0 = performance.now();
  const child = spawn(process.execPath, ['-e', script, api.url, String(ARRAYS)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  return new Promise((resolve) =>
    child.on('exit', () => resolve({ status: out.trim() || 'no answer', ms: performance.now() - t0 })),
  );
}

const alone: number[] = [];
const beside: number[] = [];
let hostile: { status: string; ms: number } | undefined;
/** The longest the event loop went without running a 5 ms timer, while the hostile uploads lasted. */
let longestStall = 0;
// Warm: the first run pays for loading the code.
await smallRun();
for (let r = 0; r < ROUNDS; r++) {
  alone.push(await smallRun());
  let uploading = true;
  const upload = hostileUpload().finally(() => {
    uploading = false;
  });
  // Small runs one after another while the hostile upload lasts (the first once it is under way).
  await new Promise((res) => setTimeout(res, 100));
  let last = performance.now();
  const ticks = setInterval(() => {
    const now = performance.now();
    longestStall = Math.max(longestStall, now - last - 5);
    last = now;
  }, 5);
  while (uploading) beside.push(await smallRun());
  clearInterval(ticks);
  hostile = await upload;
}
clearInterval(sampler);
console.log(
  JSON.stringify({
    bench: 'upload-isolation',
    rounds: ROUNDS,
    hostile_mb: round((ARRAYS * 3) / 1e6, 1),
    small_alone_ms: round(median(alone), 1),
    small_beside_ms: round(median(beside), 1),
    small_beside_max_ms: round(Math.max(...beside), 1),
    small_beside_runs: beside.length,
    ratio: round(median(beside) / median(alone), 2),
    ratio_worst: round(Math.max(...beside) / median(alone), 2),
    event_loop_stall_max_ms: round(longestStall, 1),
    hostile_status: hostile?.status,
    hostile_ms: round(hostile?.ms ?? 0, 0),
    peak_rss_mb: round(peakRss / 1e6, 0),
  }),
);
await api.close();
await pool.close();
await sim.close();
await env.cleanup();
