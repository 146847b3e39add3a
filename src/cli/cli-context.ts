import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { ConfigError, loadConfig, type Config } from '../shared/config.js';
import { redisKeys, type RedisKeys } from '../shared/keys.js';
import { createLogger, type Logger } from '../shared/logger.js';
import { connectRedis, redisAnswers } from '../shared/redis.js';
import { openRequestQueue } from '../shared/request-queue.js';

/** Exit codes: 0 ok, 1 failures in the batch, 2 bad usage or input. */
export const EXIT = { ok: 0, failures: 1, usage: 2 } as const;

/** An error the user can fix: printed as is (no stack), exit code 2. */
export class UsageError extends Error {}

export interface CliContext {
  config: Config;
  logger: Logger;
  redis: Redis;
  keys: RedisKeys;
  queue: Queue;
  close(): Promise<void>;
}

export interface LimitFlags {
  concurrency?: string;
  rpm?: string;
  tpm?: string;
  modelLimits?: string;
  maxAttempts?: string;
  timeoutMs?: string;
}

/** Flags win over their environment variables. */
export const limitOverrides = (f: LimitFlags) => ({
  CHATQ_CONCURRENCY: f.concurrency,
  CHATQ_RPM: f.rpm,
  CHATQ_TPM: f.tpm,
  CHATQ_MODEL_LIMITS: f.modelLimits,
  CHATQ_MAX_ATTEMPTS: f.maxAttempts,
  CHATQ_TIMEOUT_MS: f.timeoutMs,
});

export function readConfig(overrides: Partial<Record<string, string | undefined>> = {}): Config {
  try {
    const env = { ...process.env };
    for (const [k, v] of Object.entries(overrides)) if (v !== undefined) env[k] = v;
    return loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(err.message);
    throw err;
  }
}

export async function openContext(config: Config): Promise<CliContext> {
  if (!(await redisAnswers(config.redisUrl))) {
    throw new UsageError(`cannot reach Redis at ${config.redisUrl}. Start one (redis-server, or docker compose up -d redis) or set REDIS_URL.`);
  }
  const redis = connectRedis(config.redisUrl, 'chatq-cli');
  const queue = openRequestQueue(redis, config.prefix);
  return {
    config,
    logger: createLogger(config.logLevel),
    redis,
    keys: redisKeys(config.prefix),
    queue,
    async close() {
      await queue.close();
      redis.disconnect();
    },
  };
}

/** Runs `fn` with an open context and always closes it. */
export async function withContext<T>(config: Config, fn: (ctx: CliContext) => Promise<T>): Promise<T> {
  const ctx = await openContext(config);
  try {
    return await fn(ctx);
  } finally {
    await ctx.close();
  }
}
