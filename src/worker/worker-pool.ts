import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { DelayedError, type Processor, Worker } from 'bullmq';
import pLimit from 'p-limit';
import type { Config } from '../shared/config.js';
import { type RedisKeys, redisKeys, QUEUE_NAME } from '../shared/keys.js';
import { logFailure } from '../shared/redis/condition-log.js';
import type { Logger } from '../shared/logger.js';
import { withoutStacks } from '../shared/job-errors.js';
import { foldUsage } from '../shared/usage/usage-fold.js';
import { loadPrices } from '../shared/usage/pricing.js';
import { redisReadiness } from '../shared/redis/readiness.js';
import { connectRedis, type RedisClient, readyOf, reportErrors } from '../shared/redis/redis.js';
import type { Readiness } from './health-server.js';
import { describeRedisError } from '../shared/redis/redis-errors.js';
import { RequestQueues } from '../shared/redis/request-queue.js';
import { Admission } from '../shared/redis/admission.js';
import { checkShardCount } from '../shared/redis/shard-count.js';
import { CapacityLimiter } from './capacity-limiter.js';
import { backoffDelay } from './call-results.js';
import { createProcessor } from './process-request.js';
import { ProjectSlots } from './project-slots.js';
import { RetryLaterError } from './processor-deps.js';
import { reconcileLanes } from './reconcile-lanes.js';
import { RequestStore } from './request-store.js';
import { UpstreamClient } from './upstream-client.js';

/** How often a worker folds finished requests' usage records into the aggregates. */
const FOLD_MS = 1_000;

/** How soon a job whose run failed on Redis (gone, failing over) runs again: soon, however often it failed. */
const REDIS_RETRY_MS = 1_000;

/**
 * The wait before BullMQ runs a failed job again: exponential for the job's own failures; short and flat when Redis
 * was the cause, so that a failover does not push every lane's next run minutes out (each job fails fast, many times).
 */
function jobBackoff(attemptsMade: number, err: Error | undefined, backoffMs: number): number {
  return describeRedisError(err)?.code === 'redis_unavailable'
    ? backoffDelay(1, REDIS_RETRY_MS)
    : backoffDelay(attemptsMade, backoffMs);
}

export interface WorkerPoolOptions {
  config: Config;
  /** The upstream base URL (the CLI may point it at an embedded simulator). */
  baseUrl: string;
  logger: Logger;
  /** The shards this pool consumes (default: every one). */
  shards?: number[];
}

/** Limits and settings a worker runs with, for the start-up line (no secrets). */
export function describeWorker(config: Config, baseUrl: string) {
  return {
    upstream: baseUrl,
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

/**
 * A BullMQ worker per shard (every shard, or those given) with chatq's processor, sharing one call concurrency and the
 * global limits, plus the lane reconciler and the usage fold. Any number of these, on any machines, share the work
 * through Redis. `close()` lets in-flight calls finish (each bounded by the request timeout).
 */
/** Call slots per BullMQ worker fetching jobs; the most fetchers per process (shared among its shards), 8 per shard at least. */
const SLOTS_PER_FETCHER = 25;
const MAX_FETCHERS = 32;
const MIN_FETCHERS_PER_SHARD = 8;
/** Call slots per connection that requests' scripts go on, and the most such connections. */
const SLOTS_PER_SCRIPT_CONNECTION = 8;
const MAX_SCRIPT_CONNECTIONS = 32;

/**
 * The BullMQ workers that fetch one shard's jobs for `processor`: `fetchers` of them, sharing `jobsInHand` jobs (a few
 * more than call slots: they stand ready while BullMQ completes and fetches the others). Their blocking connections
 * join `connections`.
 */
function startFetchers(
  config: Config,
  shardKeys: RedisKeys,
  run: Processor,
  { fetchers, jobsInHand, owner, logger }: { fetchers: number; jobsInHand: number; owner: string; logger: Logger },
  connections: RedisClient[],
): Worker[] {
  return Array.from({ length: fetchers }, (_, f) => {
    const blocking = connectRedis(config, 'chatq-worker-blocking');
    connections.push(blocking);
    const share = Math.ceil((jobsInHand * (f + 1)) / fetchers) - Math.ceil((jobsInHand * f) / fetchers);
    const worker: Worker = new Worker(
      QUEUE_NAME,
      (job, token) => {
        // BullMQ fetches jobs one round trip at a time up to its concurrency before it starts the first: over a 20 ms
        // link, 29 jobs in hand wait 0.6 s. It starts at 1 and grows by one with each job started: each starts as it comes.
        if (worker.concurrency < share) worker.concurrency += 1;
        return run(job, token);
      },
      {
        connection: blocking,
        prefix: shardKeys.prefix,
        // The process's fetchers share one name: /healthz and /metrics count worker processes.
        name: owner,
        concurrency: 1,
        lockDuration: config.lockMs,
        stalledInterval: config.lockMs,
        maxStalledCount: 5,
        settings: {
          backoffStrategy: (attemptsMade: number, _type?: string, err?: Error) =>
            jobBackoff(attemptsMade, err, config.backoffMs),
        },
      },
    );
    worker.on('failed', (job, err) => {
      if (!(err instanceof RetryLaterError) && !(err instanceof DelayedError))
        logFailure(logger, 'error', { request: job?.id }, err, 'job failed unexpectedly');
    });
    return reportErrors(worker);
  });
}

/** One reconciler pass over each of `tags` (a lane's lost job re-added, a dead import ended...); what it repaired is logged. */
async function reconcileAll(
  ctx: {
    redis: RedisClient;
    keys: RedisKeys;
    queues: RequestQueues;
    stores: Map<RedisKeys, RequestStore>;
    owner: string;
    config: Config;
    logger: Logger;
  },
  tags: RedisKeys[],
): Promise<void> {
  const { redis, keys, queues, stores, owner, config, logger } = ctx;
  for (const k of tags) {
    try {
      const report = await reconcileLanes(
        redis,
        k,
        queues,
        stores.get(k) ?? new RequestStore([redis], k, config.resultTtlS, queues),
        owner,
        config.reconcileMs,
        { ttlS: config.resultTtlS, usageDays: config.usageDays },
      );
      if (report && (report.readded || report.lostJobs || report.endedImports || report.expired))
        logger.warn(
          { ...report, ...(keys.shardCount > 1 ? { shard: k.shardIndex } : {}) },
          'reconciler repaired lanes',
        );
    } catch (err) {
      logFailure(logger, 'warn', {}, err, 'reconciler pass failed');
    }
  }
}

/**
 * How many BullMQ workers fetch jobs per shard. BullMQ fetches a worker's jobs one round trip at a time: over a slow
 * link to Redis (20 ms) one fetcher starts no more than ~50 jobs a second, and on one machine ~80 (2,000 slots took
 * 3 s to fill with 8). Jobs are fetched by one BullMQ worker per 25 call slots, side by side: up to 32 per process,
 * shared out among its shards (8 each at least).
 */
const fetcherCount = (concurrency: number, shards: number) =>
  Math.min(
    Math.ceil(concurrency / SLOTS_PER_FETCHER),
    Math.max(MIN_FETCHERS_PER_SHARD, Math.ceil(MAX_FETCHERS / shards)),
  );

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

export class WorkerPool {
  private readonly timers: NodeJS.Timeout[];
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly workers: Worker[],
    private readonly connections: ReturnType<typeof connectRedis>[],
    private readonly queues: RequestQueues,
    private readonly limiter: CapacityLimiter,
    private readonly stores: RequestStore[],
    private readonly slots: { stop(): Promise<void> },
    private readonly fold: () => Promise<void>,
    reconcile: () => Promise<void>,
    reconcileMs: number,
  ) {
    this.timers = [setInterval(() => void reconcile(), reconcileMs), setInterval(() => void fold(), FOLD_MS)];
    for (const t of this.timers) t.unref();
  }

  static async start(opts: WorkerPoolOptions): Promise<WorkerPool> {
    const { config, logger } = opts;
    const keys = redisKeys(config.prefix, config.shards);
    const shards = (opts.shards ?? keys.shards.map((_, i) => i)).map((i) => keys.shard(i));
    const owner = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    const redis = connectRedis(config, 'chatq-worker');
    await checkShardCount(redis, keys);
    const queues = new RequestQueues(redis, keys, { weights: config.projectWeights, slots: config.concurrency });
    const upstream = new UpstreamClient({
      baseURL: opts.baseUrl,
      apiKey: config.apiKey,
      timeoutMs: config.timeoutMs,
      concurrency: config.concurrency,
    });
    const prices = loadPrices(config.pricesFile);
    // One call concurrency for the process, whichever shard a job comes from (its slots are taken first come, first served).
    const callSlots = pLimit(config.concurrency);
    const projectSlots = new ProjectSlots(config.concurrency, config.projectWeights);
    const fetchers = fetcherCount(config.concurrency, shards.length);
    const scripts = scriptConnections(config);
    const limiter = new CapacityLimiter(() => readyOf(scripts), keys, config, owner);
    const stores = new Map(
      shards.map((k) => [
        k,
        new RequestStore(scripts, k, config.resultTtlS, queues, {
          replicas: config.waitReplicas,
          timeoutMs: limiter.limitsCalls ? undefined : config.timeoutMs,
        }),
      ]),
    );
    const connections = [redis, ...scripts];
    const jobsInHand = config.concurrency + Math.max(2, Math.ceil(config.concurrency * 0.15));
    const workers = shards.flatMap((shardKeys) => {
      const processor = createProcessor({
        redis,
        keys: shardKeys,
        store: stores.get(shardKeys)!,
        upstream,
        queues,
        limiter,
        prices,
        maxAttempts: config.maxAttempts,
        laneSliceMs: config.laneSliceMs,
        defaultMaxTokens: config.defaultMaxTokens,
        maxOutageMs: config.maxOutageMs,
        timeoutMs: config.timeoutMs,
        logger,
        secrets: config.apiKey ? [config.apiKey] : [],
        callSlots,
        projectSlots,
      });
      return startFetchers(
        config,
        shardKeys,
        withoutStacks(processor),
        { fetchers, jobsInHand, owner, logger },
        connections,
      );
    });
    // The base tag too when sharded: batches imported over HTTP are recorded there.
    const reconciled = keys.shardCount > 1 ? [keys, ...shards] : shards;
    const reconcile = () => reconcileAll({ redis, keys, queues, stores, owner, config, logger }, reconciled);
    const fold = async () => {
      try {
        await foldUsage(redis, keys);
      } catch (err) {
        logFailure(logger, 'warn', {}, err, 'usage fold failed; the records wait for the next one');
      }
    };
    await Promise.all(workers.map((w) => w.waitUntilReady()));
    logger.info(
      {
        ...describeWorker(config, opts.baseUrl),
        ...(keys.shardCount > 1 ? { shards: shards.map((k) => k.shardIndex) } : {}),
        owner,
      },
      'worker started',
    );
    // The call slots projects share at the queue (admission.lua) are those of the workers running.
    const slots = Admission.publish(redis, keys, owner, config.concurrency);
    return new WorkerPool(
      workers,
      connections,
      queues,
      limiter,
      [...stores.values()],
      slots,
      fold,
      reconcile,
      config.reconcileMs,
    );
  }

  /** Whether this worker can take work: not shutting down, and Redis reachable with its scripts (see redisReadiness). */
  async readiness(): Promise<Readiness> {
    if (this.closing) return { ready: false, reason: 'shutting down: in-flight calls are finishing' };
    return redisReadiness(this.connections[0]!);
  }

  /** Stops taking jobs, hands back requests still waiting for capacity, lets in-flight calls finish and their results be written. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const t of this.timers) clearInterval(t);
      // Calls waiting for capacity give their requests back instead of holding the shutdown.
      this.limiter.stop();
      for (const store of this.stores) store.refills.stop();
      await Promise.all(this.workers.map((w) => w.close()));
      await this.fold();
      await this.slots.stop();
      await this.queues.close();
      for (const c of this.connections) c.disconnect();
    })();
    return this.closing;
  }
}
