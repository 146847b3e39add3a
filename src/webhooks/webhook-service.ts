import { Queue } from 'bullmq';
import type { Config } from '../shared/config.js';
import { logFailure } from '../shared/redis/condition-log.js';
import { everyTag, type RedisKeys } from '../shared/keys.js';
import { parentOfPart } from '../shared/shard-ids.js';
import { endIfPartsEnded } from '../shared/batches/sharded-batch.js';
import type { Logger } from '../shared/logger.js';
import { reportErrors, type RedisClient } from '../shared/redis/redis.js';
import { getBatch } from '../shared/batches/read-store.js';
import { evaluateBatch } from '../shared/reports/eval-report.js';
import { ATTEMPTS, startDeliveryWorker, type TagFigure, WEBHOOK_QUEUE, type WebhookJob } from './webhook-delivery.js';

/** How often the dispatcher turns recorded events into delivery jobs. */
const DISPATCH_MS = 500;

/** What a batch-ending Lua transition recorded (see the events prelude in redis.ts). */
interface BatchEvent {
  type: string;
  batch: string;
  at: number;
  pass_rate?: number;
  min_pass?: number;
}

/** The event id, the same on every attempt (receivers deduplicate on it): one event per batch and outcome. */
const eventId = (e: BatchEvent) =>
  `evt_${e.batch.replace(/^batch_/, '')}_${e.type.replace('batch.', '').replace('.', '_')}`;

/** An eval.failed event's figures (none for the others). */
const evalFigures = (e: BatchEvent): Record<string, number> =>
  e.pass_rate === undefined ? {} : { pass_rate: e.pass_rate, min_pass: e.min_pass ?? 0 };

/** An eval.failed event's tags whose pass rate is below its min_pass, read from the batch's results. */
async function tagsBelow(redis: RedisClient, keys: RedisKeys, e: BatchEvent): Promise<TagFigure[] | undefined> {
  if (e.type !== 'eval.failed') return undefined;
  const batch = await getBatch(redis, keys, e.batch);
  if (!batch) return undefined;
  const { byTag } = await evaluateBatch(redis, keys, batch);
  return Object.entries(byTag)
    .filter(([, c]) => c.passRate !== null && c.passRate < (e.min_pass ?? 0))
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([tag, c]) => ({ tag, passed: c.passed, graded: c.passed + c.failed, pass_rate: c.passRate! }));
}

// Events become jobs in order; the lock keeps two dispatchers from trimming what the other has not queued. A part of
// a sharded batch that ended (on its shard's list) may end its batch, whose event then comes on the base list.
async function drain(
  config: Config,
  redis: RedisClient,
  keys: RedisKeys,
  queue: Queue<WebhookJob>,
  list: string,
): Promise<void> {
  for (;;) {
    const events = (await redis.lrange(list, 0, 99)).map((e) => JSON.parse(e) as BatchEvent);
    if (events.length === 0) return;
    // Each batch once per page, however many of its parts ended in it.
    const parents = new Set(events.filter((e) => e.type === 'part.ended').map((e) => parentOfPart(e.batch)));
    for (const batch of parents) await endIfPartsEnded(redis, keys, batch, config.resultTtlS);
    const batchEvents = events.filter((e) => e.type !== 'part.ended');
    const tags = await Promise.all(batchEvents.map((e) => tagsBelow(redis, keys, e)));
    await queue.addBulk(
      batchEvents.map((e, i) => ({
        name: e.type,
        data: {
          id: eventId(e),
          type: e.type,
          batch: e.batch,
          createdAt: e.at,
          extra: evalFigures(e),
          ...(tags[i] ? { tagsBelow: tags[i] } : {}),
        },
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
}

/**
 * Batch events to the configured receivers, at least once: the Lua transition that ends a batch records its event;
 * a dispatcher (one at a time, under a lock) turns events into jobs of a durable BullMQ queue (job id = event id);
 * the delivery worker POSTs each, signed, and retries with backoff until a 2xx or the attempts run out. Only URLs
 * from the configuration are called. Every attempt is recorded (the latest KEPT_DELIVERIES).
 * A process without a webhook configuration (a `chatq run` beside the deployment's server) neither queues batch
 * events nor takes delivery jobs, which it could only drop: they wait, bounded, for a process that has one. It still
 * ends sharded batches whose parts have all ended (the shards' lists hold only those).
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
  const delivers = Boolean(config.webhooks.fallback) || Object.keys(config.webhooks.projects).length > 0;
  const delivery = delivers ? startDeliveryWorker(config, redis, keys, logger) : undefined;
  const [base, ...shards] = everyTag(keys);
  const lists = delivers ? [...shards, base!] : shards;
  const dispatch = async () => {
    if (lists.length === 0 || !(await redis.set(keys.eventsLock, '1', 'PX', 10_000, 'NX'))) return;
    try {
      for (const k of lists) await drain(config, redis, keys, queue, k.events);
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
      // The deliveries are for the processes that make them.
      while (delivery && Date.now() < until) {
        const counts = await queue.getJobCounts('wait', 'active');
        if ((counts.wait ?? 0) + (counts.active ?? 0) === 0) return;
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async close() {
      clearInterval(timer);
      await delivery?.close();
      await queue.close();
    },
  };
}
