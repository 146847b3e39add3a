/**
 * bench/enqueue: imports a generated JSONL file with `chatq enqueue` into a private redis-server and prints one
 * JSON line: lines/s, the producer's peak RSS for a small and a large file (flat = streaming), and Redis bytes per
 * queued request beyond its payload; next to raw BullMQ addBulk of the same payloads (the baseline).
 *   npx tsx bench/enqueue.ts [--lines 1000000] [--no-aof]   (default: AOF on, appendfsync everysec, as in production)
 */
import { spawn } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { Queue } from 'bullmq';
import { startLocalRedis } from '../src/cli/local-redis.js';
import { connectRedis } from '../src/shared/redis/redis.js';
import { CLI } from '../test/helpers/test-env.js';
import { arg, round } from './bench-kit.js';

const LINES = arg('lines', 1_000_000);
const dir = mkdtempSync(join(tmpdir(), 'chatq-enqueue-'));

async function writeFile(lines: number): Promise<string> {
  const file = join(dir, `input-${lines}.jsonl`);
  const out = createWriteStream(file);
  for (let i = 0; i < lines; i++) {
    const line = `${JSON.stringify({ custom_id: `r${i}`, user: `user-${i % 50_000}`, model: 'gpt-4o-mini', messages: [{ role: 'user', content: `Question ${i}: what is the capital of country number ${i % 200}?` }], max_tokens: 64 })}\n`;
    if (!out.write(line)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  return file;
}

const usedMemory = async (url: string) => {
  const r = connectRedis({ redisUrl: url, redisCluster: false });
  const info = await r.info('memory');
  r.disconnect();
  return Number(/used_memory:(\d+)/.exec(info)![1]);
};

/** Runs `chatq enqueue` and samples its resident set (VmHWM = peak) until it exits. */
async function enqueue(file: string, redisUrl: string): Promise<{ seconds: number; peakRssMb: number }> {
  const t0 = Date.now();
  const child = spawn(process.execPath, [CLI, 'enqueue', file], {
    env: { ...process.env, REDIS_URL: redisUrl, CHATQ_PREFIX: '{bench}', LOG_LEVEL: 'error' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  let peak = 0;
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]));
    } catch {
      // exited between samples
    }
  }, 50);
  const [code] = await once(child, 'exit');
  clearInterval(timer);
  if (code !== 0) throw new Error(`chatq enqueue exited ${code}`);
  return { seconds: (Date.now() - t0) / 1000, peakRssMb: round(peak / 1024, 1) };
}

async function rawBullmq(
  file: string,
  redisUrl: string,
  lines: number,
): Promise<{ perSecond: number; bytesPerJob: number }> {
  const conn = connectRedis({ redisUrl, redisCluster: false });
  const queue = new Queue('raw', { connection: conn, prefix: '{raw}' });
  const before = await usedMemory(redisUrl);
  const t0 = Date.now();
  const text = readFileSync(file, 'utf8').split('\n');
  for (let i = 0; i < lines; i += 1000) {
    await queue.addBulk(text.slice(i, Math.min(i + 1000, lines)).map((l) => ({ name: 'chat', data: JSON.parse(l) })));
  }
  const seconds = (Date.now() - t0) / 1000;
  const bytes = (await usedMemory(redisUrl)) - before;
  await queue.close();
  conn.disconnect();
  return { perSecond: lines / seconds, bytesPerJob: bytes / lines };
}

const AOF = process.argv.includes('--no-aof') ? 'off' : 'everysec';
const small = await writeFile(Math.max(1000, Math.floor(LINES / 10)));
const large = await writeFile(LINES);
const redis = await startLocalRedis({ appendfsync: AOF });
try {
  const smallRun = await enqueue(small, redis.url);
  const before = await usedMemory(redis.url);
  const largeRun = await enqueue(large, redis.url);
  const bytes = (await usedMemory(redis.url)) - before;
  const payload = statSync(large).size / LINES;
  const raw = await rawBullmq(large, redis.url, Math.min(LINES, 200_000));
  console.log(
    JSON.stringify({
      bench: 'enqueue',
      lines: LINES,
      redis_aof: AOF,
      chatq_lines_per_s: Math.round(LINES / largeRun.seconds),
      producer_peak_rss_mb: {
        [`${Math.floor(LINES / 10)}_lines`]: smallRun.peakRssMb,
        [`${LINES}_lines`]: largeRun.peakRssMb,
      },
      input_bytes_per_line: round(payload, 1),
      redis_bytes_per_request: round(bytes / LINES, 1),
      redis_bytes_per_request_beyond_payload: round(bytes / LINES - payload, 1),
      baseline_raw_bullmq_addbulk: {
        jobs_per_s: Math.round(raw.perSecond),
        redis_bytes_per_job: round(raw.bytesPerJob, 1),
        note: 'first 200k lines, JSON.parse only, no validation',
      },
    }),
  );
} finally {
  await redis.stop();
  rmSync(dir, { recursive: true, force: true });
}
process.exit(0);
