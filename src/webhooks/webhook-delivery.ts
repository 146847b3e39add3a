import { DelayedError, Worker, type Job } from 'bullmq';
import type { Config, WebhookEndpoint } from '../shared/config.js';
import { logFailure } from '../shared/redis/condition-log.js';
import { withoutStacks } from '../shared/job-errors.js';
import { DEFAULT_PROJECT, type RedisKeys } from '../shared/keys.js';
import type { Logger } from '../shared/logger.js';
import { connectRedis, reportErrors, type RedisClient } from '../shared/redis/redis.js';
import { CLOSE_STEP_MS, closeWorkers, RunningJobs } from '../shared/redis/worker-close.js';
import { signEvent } from './sign-event.js';

export const WEBHOOK_QUEUE = 'webhooks';
/** Delivery attempts of one event, with exponential backoff from 1 s (the last about 17 minutes after the first). */
export const ATTEMPTS = 11;
const TIMEOUT_MS = 10_000;
const KEPT_DELIVERIES = 1_000;
/** Deliveries one process makes at once, all receivers together. */
const CONCURRENCY = 16;
/** Deliveries one process makes at once to one receiver: a receiver that hangs holds no more than these. */
const PER_RECEIVER = 2;
/** How soon an event whose receiver is busy asks again (plus jitter). */
const BUSY_RECHECK_MS = 1_000;
/** After this many failed deliveries in a row a receiver is paused for PAUSE_MS; then one delivery tries it again. */
const PAUSE_AFTER = 5;
const PAUSE_MS = 60_000;
/** A receiver's record outlives its last failure by this long (a week). */
const RECEIVER_TTL_S = 7 * 24 * 3600;

export interface WebhookJob {
  id: string;
  type: string;
  batch: string;
  createdAt: number;
  /** More of the event's data (eval.failed: pass_rate, min_pass). */
  extra: Record<string, number>;
  /** eval.failed: the tags whose pass rate is below min_pass. */
  tagsBelow?: TagFigure[];
}

/** A tag's pass figures in an eval.failed event. */
export interface TagFigure {
  tag: string;
  passed: number;
  graded: number;
  pass_rate: number;
}

export interface Delivery {
  event: string;
  type: string;
  batch: string;
  project: string;
  attempt: number;
  at: number;
  status: number | null;
  outcome: 'delivered' | 'failed' | 'gave_up';
  error?: string;
}

export const endpointFor = (config: Pick<Config, 'webhooks'>, project: string): WebhookEndpoint | undefined =>
  config.webhooks.projects[project] ?? config.webhooks.fallback;

/** Which receiver a project's events go to: its own (named after it), or the default one ("*"). */
const DEFAULT_RECEIVER = '*';
const receiverOf = (config: Pick<Config, 'webhooks'>, project: string) =>
  config.webhooks.projects[project] ? project : DEFAULT_RECEIVER;

/** A receiver's health: failed deliveries in a row, and until when it is paused (ms, 0: not paused). */
export interface ReceiverHealth {
  receiver: string;
  failuresInARow: number;
  pausedUntil: number;
  lastError: string;
}

interface DeliveryContext {
  config: Config;
  redis: RedisClient;
  keys: RedisKeys;
  /** Deliveries in flight in this process, by receiver. */
  inFlight: Map<string, number>;
}

/** Keeps one delivery attempt (the latest KEPT_DELIVERIES) and counts it by outcome (chatq_webhook_deliveries_total). */
async function record(redis: RedisClient, keys: RedisKeys, d: Delivery): Promise<void> {
  await redis
    .multi()
    .lpush(keys.webhookDeliveries, JSON.stringify(d))
    .ltrim(keys.webhookDeliveries, 0, KEPT_DELIVERIES - 1)
    .hincrby(keys.metrics, `webhook_${d.outcome}`, 1)
    .exec();
}

/** Puts a job back for `ms` (no attempt used). */
async function later(job: Job<WebhookJob>, token: string | undefined, ms: number): Promise<never> {
  await job.moveToDelayed(Date.now() + ms, token);
  throw new DelayedError();
}

/** Counts a receiver's failure in a row; past PAUSE_AFTER it is paused. */
async function noteFailure(redis: RedisClient, keys: RedisKeys, receiver: string, error: string): Promise<void> {
  const key = keys.webhookReceiver(receiver);
  const [[, failures]] = (await redis
    .multi()
    .hincrby(key, 'failures', 1)
    .hset(key, 'last_error', error.slice(0, 300))
    .expire(key, RECEIVER_TTL_S)
    .exec()) as [[null, number]];
  if (failures >= PAUSE_AFTER) await redis.hset(key, 'paused_until', Date.now() + PAUSE_MS);
}

/** One delivery attempt of an event, unless its receiver is paused or busy (then later, no attempt used). */
async function deliver(ctx: DeliveryContext, job: Job<WebhookJob>, token?: string): Promise<void> {
  const { config, redis, keys, inFlight } = ctx;
  const e = job.data;
  const project = (await redis.hget(keys.batch(e.batch), 'project')) || DEFAULT_PROJECT;
  const endpoint = endpointFor(config, project);
  if (!endpoint) return;
  // Receivers are apart: a paused one waits out its pause, a busy one (its deliveries in flight) lets the others go.
  const receiver = receiverOf(config, project);
  const pausedUntil = Number(await redis.hget(keys.webhookReceiver(receiver), 'paused_until'));
  if (pausedUntil > Date.now()) return later(job, token, pausedUntil - Date.now() + Math.random() * 1_000);
  if ((inFlight.get(receiver) ?? 0) >= PER_RECEIVER) return later(job, token, BUSY_RECHECK_MS + Math.random() * 500);
  inFlight.set(receiver, (inFlight.get(receiver) ?? 0) + 1);
  try {
    await post(ctx, job, project, endpoint, receiver);
  } finally {
    inFlight.set(receiver, inFlight.get(receiver)! - 1);
  }
}

/** POSTs the signed event; records the attempt and the receiver's health; throws when it was not taken (BullMQ retries). */
async function post(
  ctx: DeliveryContext,
  job: Job<WebhookJob>,
  project: string,
  endpoint: WebhookEndpoint,
  receiver: string,
): Promise<void> {
  const { redis, keys } = ctx;
  const e = job.data;
  const body = JSON.stringify({
    id: e.id,
    object: 'event',
    type: e.type,
    created_at: Math.floor(e.createdAt / 1000),
    data: { id: e.batch, ...e.extra, ...(e.tagsBelow ? { tags_below_min_pass: e.tagsBelow } : {}) },
  });
  const attempt = job.attemptsMade + 1;
  const base = { event: e.id, type: e.type, batch: e.batch, project, attempt, at: Date.now() };
  let status: number | null = null;
  try {
    const res = await fetch(endpoint.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'user-agent': 'chatq-webhooks',
        ...signEvent(endpoint.secret, e.id, Math.floor(Date.now() / 1000), body),
      },
      body,
      signal: AbortSignal.timeout(TIMEOUT_MS),
      redirect: 'manual',
    });
    status = res.status;
    // Only the status matters: the receiver's body is not read (it could be any size).
    await res.body?.cancel().catch(() => undefined);
    if (res.status >= 200 && res.status < 300) {
      await Promise.all([
        record(redis, keys, { ...base, status, outcome: 'delivered' }),
        redis.del(keys.webhookReceiver(receiver)),
      ]);
      return;
    }
    throw new Error(`the receiver answered ${res.status}`);
  } catch (err) {
    const error = (err as Error).message;
    await Promise.all([
      record(redis, keys, { ...base, status, outcome: attempt >= ATTEMPTS ? 'gave_up' : 'failed', error }),
      noteFailure(redis, keys, receiver, error),
    ]);
    throw new Error(`webhook ${e.id} to ${new URL(endpoint.url).host}: ${error}`);
  }
}

/**
 * The delivery worker: POSTs each event job, signed, to its project's receiver (only URLs from the configuration),
 * and lets BullMQ retry with backoff until a 2xx or the attempts run out. Every attempt is recorded.
 */
export function startDeliveryWorker(
  config: Config,
  redis: RedisClient,
  keys: RedisKeys,
  logger: Logger,
): { close(): Promise<void> } {
  const ctx: DeliveryContext = { config, redis, keys, inFlight: new Map() };
  const blocking = connectRedis(config, 'chatq-webhooks');
  const jobs = new RunningJobs();
  const worker = reportErrors(
    new Worker<WebhookJob>(
      WEBHOOK_QUEUE,
      jobs.counted(withoutStacks((job: Job<WebhookJob>, token?: string) => deliver(ctx, job, token))),
      {
        connection: blocking,
        prefix: keys.prefix,
        concurrency: CONCURRENCY,
        removeOnComplete: { count: 100 },
        removeOnFail: { count: 1000 },
      },
    ),
  );
  worker.on('failed', (job, err) =>
    logFailure(logger, 'warn', { event: job?.data.id, attempt: job?.attemptsMade }, err, 'webhook delivery failed'),
  );

  return {
    async close() {
      // A delivery under way ends within its timeout, and its outcome is written after.
      await closeWorkers([worker], jobs, TIMEOUT_MS + CLOSE_STEP_MS);
      blocking.disconnect();
    },
  };
}

/** The configured receivers a reader may see (their projects'; the default one for admins), with their health. */
export async function receiverHealth(
  config: Pick<Config, 'webhooks'>,
  redis: RedisClient,
  keys: RedisKeys,
  visible: (project: string) => boolean,
  admin: boolean,
): Promise<ReceiverHealth[]> {
  const receivers = [
    ...Object.keys(config.webhooks.projects).filter(visible),
    ...(config.webhooks.fallback && admin ? [DEFAULT_RECEIVER] : []),
  ];
  return Promise.all(
    receivers.map(async (receiver) => {
      const [failures, pausedUntil, lastError] = await redis.hmget(
        keys.webhookReceiver(receiver),
        'failures',
        'paused_until',
        'last_error',
      );
      const until = Number(pausedUntil);
      return {
        receiver,
        failuresInARow: Number(failures) || 0,
        pausedUntil: until > Date.now() ? until : 0,
        lastError: lastError ?? '',
      };
    }),
  );
}

/** The latest delivery attempts, newest first, of the projects a reader may see. */
export async function listDeliveries(
  redis: RedisClient,
  keys: RedisKeys,
  visible: (project: string) => boolean,
  limit = 100,
): Promise<Delivery[]> {
  return (await redis.lrange(keys.webhookDeliveries, 0, KEPT_DELIVERIES - 1))
    .map((d) => JSON.parse(d) as Delivery)
    .filter((d) => visible(d.project))
    .slice(0, limit);
}
