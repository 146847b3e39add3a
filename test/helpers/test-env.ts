import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { loadConfig, type Config } from '../../src/shared/config.js';
import type { RedisClient } from '../../src/shared/redis/redis.js';
import { redisKeys, type RedisKeys } from '../../src/shared/keys.js';
import { createLogger } from '../../src/shared/logger.js';
import { connectRedis } from '../../src/shared/redis/redis.js';
import { RequestQueues } from '../../src/shared/redis/request-queue.js';
import { submitBatch, type SubmitOptions, type SubmitResult } from '../../src/producer/submit-batch.js';
import { Readable } from 'node:stream';
import { getBatch } from '../../src/shared/batches/read-store.js';
import { loadPrices } from '../../src/shared/usage/pricing.js';
import type { BatchRecord } from '../../src/shared/batch-record.js';
import type { Queue } from 'bullmq';
import type { UseridSettings } from '../../src/shared/userid.js';

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
export const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

/** Every test gets its own key prefix (its own hash tag) and removes its keys afterwards. */
export interface TestEnv {
  prefix: string;
  redis: RedisClient;
  keys: RedisKeys;
  /** Shard 0's request queue (the only one unless sharded). */
  queue: Queue;
  queues: RequestQueues;
  config(env?: Record<string, string>): Config;
  env(extra?: Record<string, string>): Record<string, string>;
  /** Imports `lines` as `chatq enqueue` does (`userids`: the deployment's userid settings, by default none of its own). */
  submit(lines: string[] | string, opts?: Partial<SubmitOptions>, userids?: UseridSettings): Promise<SubmitResult>;
  batch(id: string): Promise<BatchRecord>;
  cleanup(): Promise<void>;
}

/** Every test gets its own prefix on the shared Redis (or on `redisUrl`; with `cluster`, the seed nodes of a Redis Cluster). */
export async function createTestEnv(
  redisUrl = REDIS_URL,
  opts: { cluster?: boolean; shards?: number } = {},
): Promise<TestEnv> {
  const prefix = `{t-${randomUUID().slice(0, 12)}}`;
  const redis = connectRedis({ redisUrl, redisCluster: opts.cluster ?? false }, 'chatq-test');
  const keys = redisKeys(prefix, opts.shards);
  const queues = new RequestQueues(redis, keys);
  const queue = queues.all[0]!;
  // Tests that restart Redis expect connection errors; the clients reconnect by themselves.
  redis.on('error', () => undefined);
  for (const q of queues.all) q.on('error', () => undefined);
  const baseEnv = {
    REDIS_URL: redisUrl,
    CHATQ_PREFIX: prefix,
    LOG_LEVEL: 'warn',
    ...(opts.cluster ? { CHATQ_REDIS_CLUSTER: '1' } : {}),
    ...(opts.shards ? { CHATQ_SHARDS: String(opts.shards) } : {}),
  };
  const env: TestEnv = {
    prefix,
    redis,
    keys,
    queue,
    queues,
    config: (extra = {}) => loadConfig({ ...baseEnv, ...extra }),
    env: (extra = {}) => ({ ...process.env, ...baseEnv, ...extra }) as Record<string, string>,
    async submit(lines, opts = {}, userids = { secret: undefined, holdS: 0 }) {
      const text = Array.isArray(lines) ? lines.join('\n') : lines;
      const ctx = { redis, queues, keys, resultTtlS: 3600, prices: loadPrices(), userids };
      return submitBatch(ctx, () => Readable.from([text]), { source: 'test.jsonl', ...opts });
    },
    async batch(id) {
      const b = await getBatch(redis, keys, id);
      if (!b) throw new Error(`batch ${id} not found`);
      return b;
    },
    async cleanup() {
      await Promise.all(queues.all.map((q) => q.obliterate({ force: true }).catch(() => undefined)));
      await queues.close();
      // Every key of the prefix (and of its shards, "{t-…:s3}") starts with its hash tag's opening.
      for (const node of 'nodes' in redis ? redis.nodes('master') : [redis]) {
        let cursor = '0';
        do {
          const [next, found] = await node.scan(cursor, 'MATCH', `${prefix.slice(0, -1)}*`, 'COUNT', 1000);
          cursor = next;
          // One key per command: a sharded prefix's keys are in different slots.
          await Promise.all(found.map((k) => redis.unlink(k)));
        } while (cursor !== '0');
      }
      redis.disconnect();
    },
  };
  return env;
}

export const testLogger = () => createLogger('error', 'chatq-test');

export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  timeoutMs = 60_000,
  everyMs = 100,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    // A read that fails (Redis restarting, a cluster failing over) is "not yet", until the deadline.
    const v = await fn().catch(() => undefined);
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export const waitForBatch = (env: TestEnv, id: string, timeoutMs = 120_000) =>
  waitFor(
    `batch ${id} to finish`,
    async () => {
      const b = await env.batch(id);
      return b.status === 'completed' || b.status === 'cancelled' ? b : undefined;
    },
    timeoutMs,
    200,
  );

/** A `chatq worker` process (the built CLI), as a user would run it. */
export interface WorkerProcess {
  child: ChildProcess;
  exited: Promise<number | null>;
  stderr(): string;
}

/** `nodeArgs`: Node's own flags for the worker (such as --cpu-prof, which NODE_OPTIONS may not carry). */
export function spawnWorker(env: Record<string, string>, args: string[] = [], nodeArgs: string[] = []): WorkerProcess {
  const child = spawn(process.execPath, [...nodeArgs, CLI, 'worker', ...args], {
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, exited, stderr: () => err };
}

export function runCli(
  args: string[],
  env: Record<string, string>,
  timeoutMs = 120_000,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`chatq ${args.join(' ')} timed out\n${stderr}`));
    }, timeoutMs);
    // The process may exit before the last of its output has been read from the pipes: its 'close' says all of it
    // was, unless a child of its own (a simulator it started) holds them open: then a second after 'exit' will do.
    child.once('exit', (code) => {
      clearTimeout(timer);
      const done = () => resolve({ code, stdout, stderr });
      const grace = setTimeout(done, 1_000);
      child.once('close', () => {
        clearTimeout(grace);
        done();
      });
    });
  });
}
