import type { RequestQueues } from './request-queue.js';
import type { RedisClient } from './redis.js';
import type { RedisKeys } from '../keys.js';

export interface PauseReason {
  code: string;
  message: string;
  at: number;
}

/** Pauses every worker (BullMQ queue pause) and records why, for `chatq status` and the API to show. */
export async function pauseQueue(
  queues: RequestQueues,
  redis: RedisClient,
  keys: RedisKeys,
  reason: PauseReason,
): Promise<void> {
  await redis.set(keys.pauseReason, JSON.stringify(reason));
  await queues.pause();
}

export async function resumeQueue(queues: RequestQueues, redis: RedisClient, keys: RedisKeys): Promise<void> {
  await redis.del(keys.pauseReason);
  await queues.resume();
}

export async function pauseReason(redis: RedisClient, keys: RedisKeys): Promise<PauseReason | null> {
  const raw = await redis.get(keys.pauseReason);
  return raw ? (JSON.parse(raw) as PauseReason) : null;
}
