import type { RedisClient } from '../shared/redis/redis.js';
import { probeRedis } from '../shared/redis/redis-probe.js';
import { printableRedisUrl, type RedisTarget } from '../shared/redis/redis-target.js';
import { PROJECT_NAME } from '../shared/config-env.js';
import { ConfigError, loadConfig, type Config } from '../shared/config.js';
import { ALL_PROJECTS, projectScope, type Scope } from '../shared/scope.js';
import type { RedisKeys } from '../shared/keys.js';
import { createLogger, type Logger } from '../shared/logger.js';
import type { ProducerContext } from '../producer/producer-context.js';
import { loadPrices, PriceFileError } from '../shared/usage/pricing.js';
import type { RequestQueues } from '../shared/redis/request-queue.js';
import { ShardCountError } from '../shared/redis/shard-count.js';
import { Chatq } from '../library/chatq.js';
import { connectStore } from '../library/chatq-store.js';
import { ChatqError } from '../library/errors.js';

/** Exit codes: 0 ok, 1 failures in the batch, 2 bad usage or input. */
export const EXIT = { ok: 0, failures: 1, usage: 2 } as const;

/** An error the user can fix: printed as is (no stack), exit code 2 (as the library's errors are). */
export class UsageError extends ChatqError {}

/** A command that could not do its work (an import that stopped): printed as is, exit code 1. */
export class CommandFailed extends Error {}

export interface CliContext {
  config: Config;
  logger: Logger;
  redis: RedisClient;
  keys: RedisKeys;
  queues: RequestQueues;
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

/** The CLI is admin: every project, or the one named with --project. */
export function cliScope(flags: { project?: string }): Scope {
  if (flags.project === undefined) return ALL_PROJECTS;
  if (!PROJECT_NAME.test(flags.project))
    throw new UsageError(`--project: expected 1-64 letters, digits, "_", "." or "-", got "${flags.project}"`);
  return projectScope(flags.project);
}

/** A --port value: an integer from 0 (any free port) to 65535. */
export function parsePort(value: string): number {
  const port = Number(value);
  if (!/^\d+$/.test(value) || port > 65_535)
    throw new UsageError(`--port: expected a port number (0-65535), got "${value}"`);
  return port;
}

/** Starts a server; a port already taken is the user's to change, not a crash. */
export async function listening<T>(port: number, start: () => Promise<T>): Promise<T> {
  try {
    return await start();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE')
      throw new UsageError(`port ${port} is in use (another chatq serve?): choose another with --port`);
    if ((err as NodeJS.ErrnoException).code === 'EACCES')
      throw new UsageError(`port ${port} needs privileges this process lacks: choose one above 1023 with --port`);
    throw err;
  }
}

/** What the producer needs of a CLI context: its connections, retention and price map. */
export const producerContext = (ctx: CliContext): ProducerContext => ({
  redis: ctx.redis,
  queues: ctx.queues,
  keys: ctx.keys,
  resultTtlS: ctx.config.resultTtlS,
  userids: ctx.config.userids,
  prices: loadPrices(ctx.config.pricesFile),
});

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
    const config = loadConfig(env);
    // A price file that cannot be read is a configuration mistake: say so now, not in every worker.
    loadPrices(config.pricesFile);
    return config;
  } catch (err) {
    if (err instanceof ConfigError || err instanceof PriceFileError) throw new UsageError(err.message);
    throw err;
  }
}

/** How often a process waiting for a Redis Cluster that is down asks again. */
const CLUSTER_RECHECK_MS = 1_000;

/**
 * Fails with one clear line when REDIS_URL does not lead to a usable Redis (unreachable, refused, a database it lacks,
 * a cluster that is down). With `waitWhileClusterDown` (workers, the API server), a cluster that is down is waited for.
 */
export async function requireRedis(target: RedisTarget, opts: { waitWhileClusterDown?: boolean } = {}): Promise<void> {
  let probe = await probeRedis(target);
  if (opts.waitWhileClusterDown && !probe.ok && probe.clusterDown) {
    // A long-running process started during a failover waits for it to end (saying so) rather than exit.
    process.stderr.write(`chatq: waiting for the Redis Cluster to be up: ${probe.reason}\n`);
    while (!probe.ok && probe.clusterDown) {
      await new Promise((r) => setTimeout(r, CLUSTER_RECHECK_MS));
      probe = await probeRedis(target);
    }
    if (probe.ok) process.stderr.write('chatq: the Redis Cluster is up\n');
  }
  if (probe.ok) return;
  if (!probe.unreachable) throw new UsageError(`${probe.reason} (REDIS_URL ${printableRedisUrl(target.redisUrl)}).`);
  throw new UsageError(
    `${probe.reason}. Start Redis (redis-server, or docker compose up -d redis) or set REDIS_URL (now ${printableRedisUrl(target.redisUrl)}).`,
  );
}

/** A shard count refused is the user's to fix (exit 2, its message); anything else stays what it is. */
export const usageErrorOf = (err: unknown) => (err instanceof ShardCountError ? new UsageError(err.message) : err);

export async function openContext(config: Config): Promise<CliContext> {
  await requireRedis(config);
  const { redis, keys, queues } = await connectStore(config, 'chatq-cli');
  return {
    config,
    logger: createLogger(config.logLevel),
    redis,
    keys,
    queues,
    async close() {
      await queues.close();
      redis.disconnect();
    },
  };
}

/** Runs `fn` with the library on the environment's configuration (commands built on its calls), and closes it. */
export async function withChatq<T>(fn: (chatq: Chatq) => Promise<T>): Promise<T> {
  const chatq = new Chatq();
  try {
    return await fn(chatq);
  } finally {
    await chatq.close();
  }
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
