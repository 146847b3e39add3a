import type { Logger } from '../../shared/logger.js';
import type { PriceTable } from '../../shared/usage/pricing.js';
import type { RequestQueues } from '../../shared/redis/request-queue.js';
import type { RedisKeys } from '../../shared/keys.js';
import type { RedisClient } from '../../shared/redis/redis.js';
import type { CapacityLimiter, Reservation } from '../capacity/capacity-limiter.js';
import type { RequestStore } from '../store/request-store.js';
import type { UpstreamClient } from '../upstream/upstream-client.js';
import type { ProjectSlots } from './project-slots.js';

/** What a request's run works with, what ends a run for a later retry, and what one call came to. */

export interface ProcessorDeps {
  redis: RedisClient;
  keys: RedisKeys;
  store: RequestStore;
  upstream: UpstreamClient;
  /** Where gradings go (CHATQ_JUDGE_BASE_URL), and the judge model of expectations that name none. */
  judge: { upstream: UpstreamClient; model: string | undefined };
  queues: RequestQueues;
  limiter: CapacityLimiter;
  prices: PriceTable;
  maxAttempts: number;
  /** How long a job may go on with its lane's next requests before it hands the lane back to the queue (0: never). */
  laneSliceMs: number;
  /** The reply budget assumed for a body without max_tokens (bounds a call's cost against a batch budget). */
  defaultMaxTokens: number;
  /** Wait after a 429 that named no time. */
  defaultRateLimitWaitMs?: number;
  /** How long a request may wait out an unreachable upstream before that counts as a failed attempt. */
  maxOutageMs: number;
  /** The call timeout: each call's lease (its deadline in Redis) lasts this long. */
  timeoutMs: number;
  logger: Logger;
  /** Runs a wait-for-capacity plus upstream call within the process's call concurrency. */
  callSlots: <T>(fn: () => Promise<T>) => Promise<T>;
  /** The process's jobs by project: whether a project has more than its share of the call slots. */
  projectSlots: ProjectSlots;
  /** Strings that must never reach a stored error (the API key). */
  secrets: string[];
}

/** Thrown to let BullMQ retry the job after a backoff (by the request's `tries` so far); the request stays at its lane's head. */
export class RetryLaterError extends Error {
  constructor(
    message: string,
    readonly tries = 1,
  ) {
    super(message);
  }
}

/** One call's end: its reply, or the error it failed with; when it began, how long it took, and its reservation. */
export type CallOutcome =
  | {
      ok: true;
      reply: Awaited<ReturnType<UpstreamClient['chat']>>;
      t0: number;
      latencyMs: number;
      reservation: Reservation;
    }
  | { ok: false; err: unknown; t0: number; latencyMs: number; reservation: Reservation };
