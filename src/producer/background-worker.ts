import { Worker, type Job } from 'bullmq';
import { logFailure } from '../shared/redis/condition-log.js';
import { withoutStacks } from '../shared/job-errors.js';
import { connectRedis, reportErrors } from '../shared/redis/redis.js';
import { closeWorkers, RunningJobs } from '../shared/redis/worker-close.js';
import type { ProducerServiceOptions } from './producer-context.js';

export interface BackgroundWorker {
  close(): Promise<void>;
}

/**
 * How long a producer-side job (an import, a scheduled run's submission) may take to finish when its process stops: one
 * not done by then goes on in another process once its lock lapses (imports resume from their last chunk).
 */
const JOB_STOP_MS = 10_000;

/** A BullMQ worker of the producer side (imports, scheduled runs), on its own blocking connection. */
export function startBackgroundWorker<T>(
  opts: ProducerServiceOptions,
  queueName: string,
  process: (job: Job<T>, token?: string) => Promise<unknown>,
  failure: (job: Job<T> | undefined) => Record<string, unknown>,
  concurrency = 2,
): BackgroundWorker {
  const blocking = connectRedis(opts.redisTarget, `chatq-${queueName}`);
  const jobs = new RunningJobs();
  const worker = new Worker<T>(queueName, jobs.counted(withoutStacks(process)), {
    connection: blocking,
    prefix: opts.keys.prefix,
    concurrency,
    removeOnComplete: { count: 100 },
    removeOnFail: { count: 1000 },
  });
  reportErrors(worker);
  worker.on('failed', (job, err) => logFailure(opts.logger, 'error', failure(job), err, `${queueName} job failed`));
  return {
    async close() {
      await closeWorkers([worker], jobs, JOB_STOP_MS);
      blocking.disconnect();
    },
  };
}
