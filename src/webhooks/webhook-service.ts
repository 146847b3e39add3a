import { DelayedError, Queue, Worker, type Job } from 'bullmq';
import type { Config, WebhookEndpoint } from '../shared/config.js';
import { logFailure } from '../shared/condition-log.js';
import { withoutStacks } from '../shared/job-errors.js';
import { DEFAULT_PROJECT, everyTag, parentOfPart, type RedisKeys } from '../shared/keys.js';
import { endIfPartsEnded } from '../shared/sharded-batch.js';
import type { Logger } from '../shared/logger.js';
import { connectRedis, reportErrors, type RedisClient } from '../shared/redis.js';
import { signEvent } from './sign-event.js';

export const WEBHOOK_QUEUE = 'webhooks';
/** Delivery attempts of one event, with exponential backoff from 1 s (the last about 17 minutes after the first). */
const ATTEMPTS = 11;
const TIMEOUT_MS = 10_000;
const DISPATCH_MS = 500;
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

/** What a batch-ending Lua transition recorded (see the events prelude in redis.ts). */
interface BatchEvent {
  type: string;
  batch: string;
  at: number;
  pass_rate?: number;
  min_pass?: number;
}

export interface WebhookJob {
  id: string;
  type: string;
  batch: string;
  createdAt: number;
  /** More of the event's data (eval.failed: pass_rate, min_pass). */
  extra: Record<string, number>;
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

/** The event id, the same on every attempt (receivers deduplicate on it): one event per batch and outcome. */
const eventId = (e: BatchEvent) =>
  `evt_${e.batch.replace(/^batch_/, '')}_${e.type.replace('batch.', '').replace('.', '_')}`;

/** An eval.failed event's figures (none for the others). */
const evalFigures = (e: BatchEvent): Record<string, number> =>
  e.pass_rate === undefined ? {} : { pass_rate: e.pass_rate, min_pass: e.min_pass ?? 0 };

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

/**
 * Batch events to the configured receivers, at least once: the Lua transition that ends a batch records its event;
 * a dispatcher (one at a time, under a lock) turns events into jobs of a durable BullMQ queue (job id = event id);
 * the delivery worker POSTs each, signed, and retries with backoff until a 2xx or the attempts run out. Only URLs
 * from the configuration are called. Every attempt is recorded (the latest KEPT_DELIVERIES).
 */
export interface WebhookService {
  /** Queues the events recorded so far and waits (up to `ms`) for their first delivery attempts. */
  flush(ms: number): Promise<void>;
  close(): Promise<void>;
}

export function startWebhookService(
  config: Config,
  redis: RedisClient,
  keys: RedisKeys,
  logger: Logger,
): WebhookService {
  const queue = reportErrors(new Queue<WebhookJob>(WEBHOOK_QUEUE, { connection: redis, prefix: keys.prefix }));
  const blocking = connectRedis(config, 'chatq-webhooks');
  const record = async (d: Delivery) => {
    await redis
      .multi()
      .lpush(keys.webhookDeliveries, JSON.stringify(d))
      .ltrim(keys.webhookDeliveries, 0, KEPT_DELIVERIES - 1)
      .exec();
  };

  /** Deliveries in flight in this process, by receiver. */
  const inFlight = new Map<string, number>();
  const later = async (job: Job<WebhookJob>, token: string | undefined, ms: number): Promise<never> => {
    await job.moveToDelayed(Date.now() + ms, token);
    throw new DelayedError();
  };
  const noteFailure = async (receiver: string, error: string) => {
    const key = keys.webhookReceiver(receiver);
    const [[, failures]] = (await redis
      .multi()
      .hincrby(key, 'failures', 1)
      .hset(key, 'last_error', error.slice(0, 300))
      .expire(key, RECEIVER_TTL_S)
      .exec()) as [[null, number]];
    if (failures >= PAUSE_AFTER) await redis.hset(key, 'paused_until', Date.now() + PAUSE_MS);
  };

  const deliver = async (job: Job<WebhookJob>, token?: string) => {
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
      await post(job, project, endpoint, receiver);
    } finally {
      inFlight.set(receiver, inFlight.get(receiver)! - 1);
    }
  };

  const post = async (job: Job<WebhookJob>, project: string, endpoint: WebhookEndpoint, receiver: string) => {
    const e = job.data;
    const body = JSON.stringify({
      id: e.id,
      object: 'event',
      type: e.type,
      created_at: Math.floor(e.createdAt / 1000),
      data: { id: e.batch, ...e.extra },
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
          record({ ...base, status, outcome: 'delivered' }),
          redis.del(keys.webhookReceiver(receiver)),
        ]);
        return;
      }
      throw new Error(`the receiver answered ${res.status}`);
    } catch (err) {
      const error = (err as Error).message;
      await Promise.all([
        record({ ...base, status, outcome: attempt >= ATTEMPTS ? 'gave_up' : 'failed', error }),
        noteFailure(receiver, error),
      ]);
      throw new Error(`webhook ${e.id} to ${new URL(endpoint.url).host}: ${error}`);
    }
  };
  const worker = reportErrors(
    new Worker<WebhookJob>(WEBHOOK_QUEUE, withoutStacks(deliver), {
      connection: blocking,
      prefix: keys.prefix,
      concurrency: CONCURRENCY,
      removeOnComplete: { count: 100 },
      removeOnFail: { count: 1000 },
    }),
  );
  worker.on('failed', (job, err) =>
    logFailure(logger, 'warn', { event: job?.data.id, attempt: job?.attemptsMade }, err, 'webhook delivery failed'),
  );

  // Events become jobs in order; the lock keeps two dispatchers from trimming what the other has not queued. A part of
  // a sharded batch that ended (on its shard's list) may end its batch, whose event then comes on the base list.
  const drain = async (list: string) => {
    for (;;) {
      const events = (await redis.lrange(list, 0, 99)).map((e) => JSON.parse(e) as BatchEvent);
      if (events.length === 0) return;
      // Each batch once per page, however many of its parts ended in it.
      const parents = new Set(events.filter((e) => e.type === 'part.ended').map((e) => parentOfPart(e.batch)));
      for (const batch of parents) await endIfPartsEnded(redis, keys, batch, config.resultTtlS);
      const batchEvents = events.filter((e) => e.type !== 'part.ended');
      await queue.addBulk(
        batchEvents.map((e) => ({
          name: e.type,
          data: { id: eventId(e), type: e.type, batch: e.batch, createdAt: e.at, extra: evalFigures(e) },
          opts: {
            jobId: eventId(e),
            attempts: ATTEMPTS,
            backoff: { type: 'exponential', delay: 1_000 },
            removeOnComplete: { count: 100 },
            removeOnFail: { count: 1000 },
          },
        })),
      );
      await redis.ltrim(list, events.length, -1);
    }
  };
  const dispatch = async () => {
    if (!(await redis.set(keys.eventsLock, '1', 'PX', 10_000, 'NX'))) return;
    try {
      for (const k of [...everyTag(keys).slice(1), everyTag(keys)[0]!]) await drain(k.events);
    } finally {
      await redis.del(keys.eventsLock);
    }
  };
  const timer = setInterval(() => {
    dispatch().catch((err: unknown) =>
      logFailure(logger, 'warn', {}, err, 'webhook dispatch failed; the events wait for the next pass'),
    );
  }, DISPATCH_MS);
  timer.unref();
  return {
    async flush(ms) {
      const until = Date.now() + ms;
      await dispatch();
      while (Date.now() < until) {
        const counts = await queue.getJobCounts('wait', 'active');
        if ((counts.wait ?? 0) + (counts.active ?? 0) === 0) return;
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async close() {
      clearInterval(timer);
      await worker.close();
      await queue.close();
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
