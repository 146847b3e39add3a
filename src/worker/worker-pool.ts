import { printableUrlText } from '../shared/printable-url.js';
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Worker } from 'bullmq';
import pLimit from 'p-limit';
import type { Config } from '../shared/config.js';
import { type RedisKeys, redisKeys } from '../shared/keys.js';
import type { Logger } from '../shared/logger.js';
import { withoutStacks } from '../shared/job-errors.js';
import { loadPrices } from '../shared/usage/pricing.js';
import { redisReadiness } from '../shared/redis/readiness.js';
import { connectRedis, type RedisClient, readyOf } from '../shared/redis/redis.js';
import type { Readiness } from './health-server.js';
import { RequestQueues } from '../shared/redis/request-queue.js';
import { within } from '../shared/time-bound.js';
import { CLOSE_STEP_MS, closeWorkers, RunningJobs } from '../shared/redis/worker-close.js';
import { Admission } from '../shared/redis/admission.js';
import { checkShardCount } from '../shared/redis/shard-count.js';
import { CapacityLimiter } from './capacity/capacity-limiter.js';
import { createProcessor } from './run/process-request.js';
import { ProjectSlots } from './run/project-slots.js';
import { fetcherCount, startFetchers } from './job-fetchers.js';
import { foldTask, oneAtATime, reconcileAll } from './maintenance/pool-tasks.js';
import { RequestStore } from './store/request-store.js';
import { UpstreamClient } from './upstream/upstream-client.js';

/** How often a worker folds finished requests' usage records into the aggregates. */
const FOLD_MS = 1_000;

export interface WorkerPoolOptions {
  config: Config;
  /** The upstream base URL (the CLI may point it at an embedded simulator). */
  baseUrl: string;
  logger: Logger;
  /** The shards this pool consumes (default: every one). */
  shards?: number[];
}

/** The upstream, and the judge's (its own when CHATQ_JUDGE_BASE_URL is set, else the same one). */
function upstreamsOf(config: Config, baseUrl: string) {
  const upstreamAt = (baseURL: string, apiKey: string | undefined) =>
    new UpstreamClient({ baseURL, apiKey, timeoutMs: config.timeoutMs, concurrency: config.concurrency });
  const upstream = upstreamAt(baseUrl, config.apiKey);
  const judgeUpstream = config.judge.baseUrl ? upstreamAt(config.judge.baseUrl, config.judge.apiKey) : upstream;
  return { upstream, judge: { upstream: judgeUpstream, model: config.judge.model } };
}

/** Limits and settings a worker runs with, for the start-up line (no secrets). */
export function describeWorker(config: Config, baseUrl: string) {
  return {
    upstream: printableUrlText(baseUrl, 'CHATQ_BASE_URL'),
    apiKey: config.apiKey ? 'set' : 'not set',
    concurrency: config.concurrency,
    rpm: config.rpm || 'unlimited',
    tpm: config.tpm || 'unlimited',
    modelLimits: config.modelLimits,
    maxAttempts: config.maxAttempts,
    timeoutMs: config.timeoutMs,
    backoffMs: config.backoffMs,
    heapGrowthPercent: config.heapGrowthPercent || 'V8 default',
  };
}

/** Call slots per connection that requests' scripts go on, and the most such connections. */
const SLOTS_PER_SCRIPT_CONNECTION = 8;
const MAX_SCRIPT_CONNECTIONS = 32;

/**
 * The connections requests' scripts go on: one per 8 call slots (up to 32), taken in turns (ConnectionTurns), each
 * sending all the commands of one tick in one write (fewer system calls for Redis and the worker alike; BullMQ keeps
 * its connections as they are). A lost packet holds up the commands of its connection until TCP sends it again
 * (200 ms at least), so a connection shared by every call would stall them all.
 */
const scriptConnections = (config: Config) =>
  Array.from(
    {
      length: Math.min(
        MAX_SCRIPT_CONNECTIONS,
        Math.max(1, Math.ceil(config.concurrency / SLOTS_PER_SCRIPT_CONNECTION)),
      ),
    },
    () => connectRedis(config, 'chatq-worker-scripts', { autoPipelining: true }),
  );

/**
 * Each shard's request store: its scripts on `scripts`, its claims taking their first call's lease where no limit can
 * hold a call back, and its stalls watched (a master away and back: its lanes repaired, the stall logged).
 */
function shardStores(
  config: Config,
  shards: RedisKeys[],
  scripts: RedisClient[],
  queues: RequestQueues,
  limitsCalls: boolean,
  logger: Logger,
): Map<RedisKeys, RequestStore> {
  return new Map(
    shards.map((k) => [
      k,
      new RequestStore(scripts, k, config.resultTtlS, queues, {
        replicas: config.waitReplicas,
        timeoutMs: limitsCalls ? undefined : config.timeoutMs,
        onStallRepair: (readded) =>
          logger.warn(
            { readded, ...(k.shardCount > 1 ? { shard: k.shardIndex } : {}) },
            'lanes repaired after a Redis stall (their master was away)',
          ),
      }),
    ]),
  );
}

/** The start-up log lines: what the worker runs with, and what a cluster without WAIT may repeat. */
function logStarted(config: Config, baseUrl: string, shards: RedisKeys[], owner: string, logger: Logger): void {
  logger.info(
    {
      ...describeWorker(config, baseUrl),
      ...(config.shards > 1 ? { shards: shards.map((k) => k.shardIndex) } : {}),
      owner,
    },
    'worker started',
  );
  if (config.redisCluster && config.waitReplicas.count === 0)
    logger.info(
      { docs: 'docs/architecture.md#sharding' },
      'Redis Cluster without CHATQ_REDIS_WAIT_REPLICAS: a master that dies loses the writes it had not passed to its replica yet, and the calls whose results they were are made again (at-least-once, each counted once); CHATQ_REDIS_WAIT_REPLICAS=1 makes none repeat, for about 15% of the throughput',
    );
}

/** What a running pool is made of. */
interface PoolParts {
  workers: Worker[];
  connections: RedisClient[];
  queues: RequestQueues;
  limiter: CapacityLimiter;
  stores: RequestStore[];
  slots: { stop(): Promise<void> };
  fold: () => Promise<void>;
  reconcile: () => Promise<void>;
  reconcileMs: number;
  /** How long in-flight calls may take to finish at shutdown (their timeout and a margin). */
  shutdownMs: number;
  /** The jobs the fetchers' processors are running. */
  jobs: RunningJobs;
  logger: Logger;
}

/**
 * A BullMQ worker per shard (every shard, or those given) with chatq's processor, sharing one call concurrency and the
 * global limits, plus the lane reconciler and the usage fold. Any number of these, on any machines, share the work
 * through Redis. `close()` lets in-flight calls finish (each bounded by the request timeout).
 */
export class WorkerPool {
  private readonly timers: NodeJS.Timeout[];
  private readonly tasks: ReturnType<typeof oneAtATime>[];
  private closing: Promise<void> | undefined;

  private constructor(private readonly parts: PoolParts) {
    const reconcile = oneAtATime(parts.reconcile);
    const fold = oneAtATime(parts.fold);
    this.tasks = [reconcile, fold];
    this.timers = [
      setInterval(() => void reconcile.run(), parts.reconcileMs),
      setInterval(() => void fold.run(), FOLD_MS),
    ];
    for (const t of this.timers) t.unref();
  }

  static async start(opts: WorkerPoolOptions): Promise<WorkerPool> {
    const { config, logger } = opts;
    const keys = redisKeys(config.prefix, config.shards);
    const shards = (opts.shards ?? keys.shards.map((_, i) => i)).map((i) => keys.shard(i));
    const owner = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    const redis = connectRedis(config, 'chatq-worker');
    const connections: RedisClient[] = [redis];
    const workers: Worker[] = [];
    const jobs = new RunningJobs();
    try {
      await checkShardCount(redis, keys);
      const queues = new RequestQueues(redis, keys, { weights: config.projectWeights, slots: config.concurrency });
      const { upstream, judge } = upstreamsOf(config, opts.baseUrl);
      const scripts = scriptConnections(config);
      connections.push(...scripts);
      // Limit ÷ the live workers is each one's own share while the base tag is out of reach.
      const limiter = new CapacityLimiter(
        () => readyOf(scripts),
        keys,
        config,
        owner,
        () => queues.admission.workers(),
      );
      const stores = shardStores(config, shards, scripts, queues, limiter.limitsCalls, logger);
      queues.admission.heldBy(() => [...stores.values()].filter((s) => s.held()).length);
      const deps = {
        redis,
        upstream,
        judge,
        queues,
        limiter,
        prices: loadPrices(config.pricesFile),
        maxAttempts: config.maxAttempts,
        laneSliceMs: config.laneSliceMs,
        defaultMaxTokens: config.defaultMaxTokens,
        maxOutageMs: config.maxOutageMs,
        timeoutMs: config.timeoutMs,
        logger,
        secrets: [config.apiKey, config.judge.apiKey].filter((k): k is string => k !== undefined),
        // One call concurrency for the process, whichever shard a job comes from (first come, first served).
        callSlots: pLimit(config.concurrency),
        projectSlots: new ProjectSlots(config.concurrency, config.projectWeights),
      };
      const fetchers = fetcherCount(config.concurrency, shards.length);
      const jobsInHand = config.concurrency + Math.max(2, Math.ceil(config.concurrency * 0.15));
      for (const shardKeys of shards) {
        const processor = createProcessor({ ...deps, keys: shardKeys, store: stores.get(shardKeys)! });
        workers.push(
          ...startFetchers(
            config,
            shardKeys,
            withoutStacks(processor),
            { fetchers, jobsInHand, owner, jobs, logger },
            connections,
          ),
        );
      }
      // The base tag too when sharded: batches imported over HTTP are recorded there.
      const reconciled = keys.shardCount > 1 ? [keys, ...shards] : shards;
      const reconcile = () => reconcileAll({ redis, keys, queues, stores, owner, config, logger }, reconciled);
      const fold = foldTask(redis, keys, logger);
      await Promise.all(workers.map((w) => w.waitUntilReady()));
      logStarted(config, opts.baseUrl, shards, owner, logger);
      return new WorkerPool({
        workers,
        connections,
        queues,
        limiter,
        stores: [...stores.values()],
        // The call slots projects share at the queue (admission.lua) are those of the workers running.
        slots: Admission.publish(redis, keys, owner, config.concurrency),
        fold,
        reconcile,
        reconcileMs: config.reconcileMs,
        shutdownMs: config.timeoutMs + 5_000,
        jobs,
        logger,
      });
    } catch (err) {
      // A start that fails half way leaves nothing running: no fetcher takes a job for a pool that does not exist.
      await closeWorkers(workers, jobs, 0);
      for (const c of connections) c.disconnect();
      throw err;
    }
  }

  /** Whether this worker can take work: not shutting down, and Redis reachable with its scripts (see redisReadiness). */
  async readiness(): Promise<Readiness> {
    if (this.closing) return { ready: false, reason: 'shutting down: in-flight calls are finishing' };
    return redisReadiness(this.parts.connections[0]!);
  }

  /**
   * Stops taking jobs, hands back requests still waiting for capacity, lets in-flight calls finish and their results be
   * written, within their timeout and a margin: Redis or not, it ends by then, and says what it left (the calls still
   * in flight: their jobs are taken over once their locks lapse).
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const { workers, limiter, stores, slots, queues, connections, fold, shutdownMs, jobs, logger } = this.parts;
      for (const t of this.timers) clearInterval(t);
      // Calls waiting for capacity give their requests back instead of holding the shutdown.
      limiter.stop();
      for (const store of stores) {
        store.refills.stop();
        store.stalls?.stop();
      }
      const { jobsFinished, closed } = await closeWorkers(workers, jobs, shutdownMs);
      if (!jobsFinished)
        logger.warn(
          { left: jobs.count, waitedMs: shutdownMs },
          'worker stopped with calls still unfinished (Redis out of reach, or calls past their timeout): their jobs are taken over once their locks lapse',
        );
      if (!closed)
        logger.warn(
          { waitedMs: CLOSE_STEP_MS },
          'job fetchers not closed in time (Redis out of reach): connections dropped',
        );
      // The last fold, withdrawing this worker's slots, closing its queues: side by side, bounded together.
      const last = Promise.all(this.tasks.map((t) => t.running())).then(() =>
        Promise.all([fold(), slots.stop(), queues.close()]),
      );
      await within(last, CLOSE_STEP_MS);
      for (const c of connections) c.disconnect();
    })();
    return this.closing;
  }
}
