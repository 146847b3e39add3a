import { Queue, type JobsOptions } from 'bullmq';
import { reportErrors, type RedisClient } from './redis.js';
import { QUEUE_NAME } from './keys.js';

/**
 * The BullMQ queue holds at most one job per lane: the lane's oldest unfinished request, with jobId = request id.
 * Jobs carry no payload (the request hash is the record) and vanish on completion.
 */
export const JOB_NAME = 'chat';

export const JOB_OPTIONS: JobsOptions = {
  // chatq counts attempts itself (on the request) and decides when a request has failed for good.
  attempts: 1_000_000,
  backoff: { type: 'chatq' },
  removeOnComplete: true,
  removeOnFail: { age: 7 * 24 * 3600 },
};

export function openRequestQueue(connection: RedisClient, prefix: string): Queue {
  return reportErrors(new Queue(QUEUE_NAME, { connection, prefix }));
}

/**
 * Adds lane heads to BullMQ (after `delayMs`: a turn gap). Adding an id whose job still exists is a no-op, so a
 * double add is harmless.
 */
export async function addLaneHeads(queue: Queue, ids: readonly string[], delayMs = 0): Promise<void> {
  if (ids.length === 0) return;
  if (ids.length === 1) {
    await queue.add(JOB_NAME, {}, { ...JOB_OPTIONS, jobId: ids[0]!, ...(delayMs > 0 ? { delay: delayMs } : {}) });
    return;
  }
  await queue.addBulk(ids.map((id) => ({ name: JOB_NAME, data: {}, opts: { ...JOB_OPTIONS, jobId: id } })));
}
