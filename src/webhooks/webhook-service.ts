import { Queue, Worker, type Job } from 'bullmq';
import type { Config, WebhookEndpoint } from '../shared/config.js';
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
const eventId = (e: BatchEvent) => `evt_${e.batch.replace(/^batch_/, '')}_${e.type.replace('batch.', '').replace('.', '_')}`;

/** An eval.failed event's figures (none for the others). */
const evalFigures = (e: BatchEvent): Record<string, number> => (e.pass_rate === undefined ? {} : { pass_rate: e.pass_rate, min_pass: e.min_pass ?? 0 });

export const endpointFor = (config: Pick<Config, 'webhooks'>, project: string): WebhookEndpoint | undefined => config.webhooks.projects[project] ?? config.webhooks.fallback;

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

export function startWebhookService(config: Config, redis: RedisClient, keys: RedisKeys, logger: Logger): WebhookService {
  const queue = reportErrors(new Queue<WebhookJob>(WEBHOOK_QUEUE, { connection: redis, prefix: keys.prefix }));
  const blocking = connectRedis(config, 'chatq-webhooks');
  const record = async (d: Delivery) => {
    await redis.multi().lpush(keys.webhookDeliveries, JSON.stringify(d)).ltrim(keys.webhookDeliveries, 0, KEPT_DELIVERIES - 1).exec();
  };

  const deliver = async (job: Job<WebhookJob>) => {
    const e = job.data;
    const project = (await redis.hget(keys.batch(e.batch), 'project')) || DEFAULT_PROJECT;
    const endpoint = endpointFor(config, project);
    if (!endpoint) return;
    const body = JSON.stringify({ id: e.id, object: 'event', type: e.type, created_at: Math.floor(e.createdAt / 1000), data: { id: e.batch, ...e.extra } });
    const attempt = job.attemptsMade + 1;
    const base = { event: e.id, type: e.type, batch: e.batch, project, attempt, at: Date.now() };
    let status: number | null = null;
    try {
      const res = await fetch(endpoint.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'chatq-webhooks', ...signEvent(endpoint.secret, e.id, Math.floor(Date.now() / 1000), body) },
        body,
        signal: AbortSignal.timeout(TIMEOUT_MS),
        redirect: 'manual',
      });
      status = res.status;
      // Only the status matters: the receiver's body is not read (it could be any size).
      await res.body?.cancel().catch(() => undefined);
      if (res.status >= 200 && res.status < 300) {
        await record({ ...base, status, outcome: 'delivered' });
        return;
      }
      throw new Error(`the receiver answered ${res.status}`);
    } catch (err) {
      const error = (err as Error).message;
      await record({ ...base, status, outcome: attempt >= ATTEMPTS ? 'gave_up' : 'failed', error });
      throw new Error(`webhook ${e.id} to ${new URL(endpoint.url).host}: ${error}`);
    }
  };
  const worker = reportErrors(new Worker<WebhookJob>(WEBHOOK_QUEUE, withoutStacks(deliver), { connection: blocking, prefix: keys.prefix, concurrency: 4, removeOnComplete: { count: 100 }, removeOnFail: { count: 1000 } }));
  worker.on('failed', (job, err) => logger.warn({ event: job?.data.id, attempt: job?.attemptsMade, err: err.message }, 'webhook delivery failed'));

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
          opts: { jobId: eventId(e), attempts: ATTEMPTS, backoff: { type: 'exponential', delay: 1_000 }, removeOnComplete: { count: 100 }, removeOnFail: { count: 1000 } },
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
    dispatch().catch((err: Error) => logger.warn({ err: err.message }, 'webhook dispatch failed; the events wait for the next pass'));
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

/** The latest delivery attempts, newest first, of the projects a reader may see. */
export async function listDeliveries(redis: RedisClient, keys: RedisKeys, visible: (project: string) => boolean, limit = 100): Promise<Delivery[]> {
  return (await redis.lrange(keys.webhookDeliveries, 0, KEPT_DELIVERIES - 1)).map((d) => JSON.parse(d) as Delivery).filter((d) => visible(d.project)).slice(0, limit);
}
