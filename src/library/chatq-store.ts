import { ConfigError, loadConfig, type Config } from '../shared/config.js';
import { redisKeys, type RedisKeys } from '../shared/keys.js';
import { connectRedis, type RedisClient } from '../shared/redis/redis.js';
import { probeRedis } from '../shared/redis/redis-probe.js';
import { printableRedisUrl } from '../shared/redis/redis-target.js';
import { RequestQueues } from '../shared/redis/request-queue.js';
import { checkShardCount, ShardCountError } from '../shared/redis/shard-count.js';
import { loadPrices, type PriceTable } from '../shared/usage/pricing.js';
import type { UseridSettings } from '../shared/userid.js';
import { ChatqError, RedisUnavailableError } from './errors.js';
import type { ChatqOptions, WorkerOptions } from './types.js';

/** The environment variables the options stand for (options win; the rest come from the environment, as the CLI's). */
const optionVars = (o: ChatqOptions & WorkerOptions): Record<string, string | undefined> => ({
  REDIS_URL: o.redisUrl,
  CHATQ_PREFIX: o.prefix,
  CHATQ_SHARDS: o.shards === undefined ? undefined : String(o.shards),
  CHATQ_REDIS_CLUSTER: o.redisCluster === undefined ? undefined : o.redisCluster ? '1' : '0',
  LOG_LEVEL: o.logLevel,
  CHATQ_API_KEY: o.apiKey,
  CHATQ_BASE_URL: o.baseUrl,
  CHATQ_CONCURRENCY: o.concurrency === undefined ? undefined : String(o.concurrency),
  CHATQ_RPM: o.rpm === undefined ? undefined : String(o.rpm),
  CHATQ_TPM: o.tpm === undefined ? undefined : String(o.tpm),
});

/** The configuration of the options, over the environment's; a setting that is off is a ChatqError saying which. */
export function configOf(options: ChatqOptions & WorkerOptions): Config {
  const env: Record<string, string | undefined> = { ...process.env, ...(options.env ?? {}) };
  for (const [k, v] of Object.entries(optionVars(options))) if (v !== undefined) env[k] = v;
  try {
    return loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) throw new ChatqError(err.message);
    throw err;
  }
}

/** What the library's calls run on: the configuration, its connection and queues, the price map. */
export interface Open {
  config: Config;
  redis: RedisClient;
  keys: RedisKeys;
  queues: RequestQueues;
  prices: PriceTable;
  resultTtlS: number;
  userids: UseridSettings;
}

/** Opens the store the configuration names: a Redis that cannot be used is a RedisUnavailableError that says why. */
export async function openStore(config: Config): Promise<Open> {
  const probe = await probeRedis(config);
  if (!probe.ok) throw new RedisUnavailableError(`${probe.reason} (REDIS_URL ${printableRedisUrl(config.redisUrl)})`);
  const { redis, keys, queues } = await connectStore(config, 'chatq-library');
  return {
    config,
    redis,
    keys,
    queues,
    prices: loadPrices(config.pricesFile),
    resultTtlS: config.resultTtlS,
    userids: config.userids,
  };
}

/**
 * A connection named `name`, the keys and the queues of the configuration, once its shard count is the one the data
 * was written with (another is a ChatqError saying so; the connection is closed).
 */
export async function connectStore(
  config: Config,
  name: string,
): Promise<{ redis: RedisClient; keys: RedisKeys; queues: RequestQueues }> {
  const redis = connectRedis(config, name, { failFast: true });
  const keys = redisKeys(config.prefix, config.shards);
  try {
    await checkShardCount(redis, keys);
  } catch (err) {
    redis.disconnect();
    throw err instanceof ShardCountError ? new ChatqError(err.message) : err;
  }
  return {
    redis,
    keys,
    queues: new RequestQueues(redis, keys, { weights: config.projectWeights, slots: config.concurrency }),
  };
}
