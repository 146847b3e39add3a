import type { Worker } from 'bullmq';
import { within } from '../time-bound.js';

/**
 * How long BullMQ's own steps of a worker's close after its jobs (its lock renewals, its connections) may take. A
 * connection whose Redis is gone never says it ended once told to (ioredis emits no 'end' while it waits to reconnect),
 * and BullMQ's close waits for that: without a bound, a worker asked to stop then would never exit.
 */
export const CLOSE_STEP_MS = 2_000;

/** The jobs a processor is running: how many, and when none is. */
export class RunningJobs {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  get count(): number {
    return this.running;
  }

  /** `processor`, counted while each of its runs lasts. */
  counted<A extends unknown[], R>(processor: (...args: A) => Promise<R>): (...args: A) => Promise<R> {
    return async (...args) => {
      this.running += 1;
      try {
        return await processor(...args);
      } finally {
        this.running -= 1;
        if (this.running === 0) for (const done of this.waiting.splice(0)) done();
      }
    };
  }

  idle(): Promise<void> {
    return this.running === 0 ? Promise.resolve() : new Promise((done) => this.waiting.push(done));
  }
}

/**
 * Closes `workers` (BullMQ) whose processors `jobs` counts: they take no new job, those running get `jobsMs` to finish
 * (a job left then is taken over once its lock lapses), and BullMQ's steps after them CLOSE_STEP_MS; a close not done
 * by then has its connections dropped (they stop trying to reconnect). Says whether the jobs finished, and the close.
 */
export async function closeWorkers(
  workers: Worker[],
  jobs: RunningJobs,
  jobsMs: number,
): Promise<{ jobsFinished: boolean; closed: boolean }> {
  const closing = Promise.all(workers.map((w) => w.close()));
  const jobsFinished = await within(jobs.idle(), jobsMs);
  const closed = await within(closing, CLOSE_STEP_MS);
  if (!closed) for (const w of workers) w.disconnect().catch(() => undefined);
  return { jobsFinished, closed };
}
