import type { Job } from 'bullmq';

/**
 * A BullMQ processor whose errors keep their message but lose their stack (BullMQ stores it on the job, and the queue
 * board shows it: server paths are nobody's business there). LOG_LEVEL=debug keeps them.
 */
export function withoutStacks<T, R>(
  process: (job: Job<T>, token?: string) => Promise<R>,
): (job: Job<T>, token?: string) => Promise<R> {
  if (globalThis.process.env.LOG_LEVEL === 'debug') return process;
  return async (job, token) => {
    try {
      return await process(job, token);
    } catch (err) {
      if (err instanceof Error) err.stack = `${err.name}: ${err.message}`;
      throw err;
    }
  };
}
