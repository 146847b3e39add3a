import { DelayedError, type Job, type Processor, Worker } from 'bullmq';
import type { Config } from '../shared/config.js';
import { type RedisKeys, QUEUE_NAME } from '../shared/keys.js';
import type { Logger } from '../shared/logger.js';
import { logFailure } from '../shared/redis/condition-log.js';
import { connectRedis, type RedisClient, reportErrors } from '../shared/redis/redis.js';
import { describeRedisError } from '../shared/redis/redis-errors.js';
import type { RunningJobs } from '../shared/redis/worker-close.js';
import { backoffDelay } from './run/call-results.js';
import { RetryLaterError } from './run/processor-deps.js';

/** How often BullMQ looks for jobs whose lock lapsed (their worker died): one script per fetcher. */
const STALLED_CHECK_MS = 5_000;

/** How soon a job whose run failed on Redis (gone, failing over) runs again: soon, however often it failed. */
const REDIS_RETRY_MS = 1_000;

/**
 * The wait before BullMQ runs a failed job again: exponential in the request's own tries (a job serves a whole lane: its
 * failures for earlier requests are not this one's); short and flat when Redis was the cause, so that a failover does
 * not push every lane's next run minutes out (each job fails fast, many times).
 */
export function jobBackoff(attemptsMade: number, err: Error | undefined, backoffMs: number): number {
  if (describeRedisError(err)?.code === 'redis_unavailable') return backoffDelay(1, REDIS_RETRY_MS);
  return backoffDelay(err instanceof RetryLaterError ? err.tries : attemptsMade, backoffMs);
}

/** Call slots per BullMQ worker fetching jobs; the most fetchers per process (shared among its shards), 8 per shard at least. */
const SLOTS_PER_FETCHER = 25;
const MAX_FETCHERS = 32;
const MIN_FETCHERS_PER_SHARD = 8;
/**
 * The BullMQ workers that fetch one shard's jobs for `processor`: `fetchers` of them, sharing `jobsInHand` jobs (a few
 * more than call slots: they stand ready while BullMQ completes and fetches the others). Their blocking connections
 * join `connections`.
 */
export function startFetchers(
  config: Config,
  shardKeys: RedisKeys,
  run: Processor,
  {
    fetchers,
    jobsInHand,
    owner,
    jobs,
    logger,
  }: { fetchers: number; jobsInHand: number; owner: string; jobs: RunningJobs; logger: Logger },
  connections: RedisClient[],
): Worker[] {
  return Array.from({ length: fetchers }, (_, f) => {
    const blocking = connectRedis(config, 'chatq-worker-blocking');
    connections.push(blocking);
    const share = Math.ceil((jobsInHand * (f + 1)) / fetchers) - Math.ceil((jobsInHand * f) / fetchers);
    const worker: Worker = new Worker(
      QUEUE_NAME,
      jobs.counted((job: Job, token?: string) => {
        // BullMQ fetches jobs one round trip at a time up to its concurrency before it starts the first: over a 20 ms
        // link, 29 jobs in hand wait 0.6 s. It starts at 1 and grows by one with each job started: each starts as it comes.
        if (worker.concurrency < share) worker.concurrency += 1;
        return run(job, token);
      }),
      {
        connection: blocking,
        prefix: shardKeys.prefix,
        // The process's fetchers share one name: /healthz and /metrics count worker processes.
        name: owner,
        concurrency: 1,
        lockDuration: config.lockMs,
        // A killed worker's job is taken over at the first check after its lock lapsed: within this of CHATQ_LOCK_MS.
        stalledInterval: Math.min(config.lockMs, STALLED_CHECK_MS),
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

/**
 * How many BullMQ workers fetch jobs per shard. BullMQ fetches a worker's jobs one round trip at a time: over a slow
 * link to Redis (20 ms) one fetcher starts no more than ~50 jobs a second, and on one machine ~80 (2,000 slots took
 * 3 s to fill with 8). Jobs are fetched by one BullMQ worker per 25 call slots, side by side: up to 32 per process,
 * shared out among its shards (8 each at least).
 */
export const fetcherCount = (concurrency: number, shards: number) =>
  Math.min(
    Math.ceil(concurrency / SLOTS_PER_FETCHER),
    Math.max(MIN_FETCHERS_PER_SHARD, Math.ceil(MAX_FETCHERS / shards)),
  );
