import { Queue, type JobsOptions, type JobType } from 'bullmq';
import { reportErrors, type RedisClient } from './redis.js';
import { QUEUE_NAME, type RedisKeys } from '../keys.js';
import { groupBy } from '../group-by.js';
import { Admission, type AdmissionSettings } from './admission.js';

/** Call slots assumed before any worker has published its own (CHATQ_CONCURRENCY's default). */
const DEFAULT_SLOTS = 50;

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

/**
 * BullMQ's event stream of the queue is kept this long (about: it is trimmed by whole stream nodes), not its default
 * 10,000: nothing in chatq reads it (requests keep their own record), and at 10,000 it costs Redis tens of bytes per
 * request of a small batch. Enough to watch a queue live (QueueEvents, `XRANGE`).
 */
export const QUEUE_EVENTS_KEPT = 1000;

export function openRequestQueue(connection: RedisClient, prefix: string): Queue {
  return reportErrors(
    new Queue(QUEUE_NAME, { connection, prefix, streams: { events: { maxLen: QUEUE_EVENTS_KEPT } } }),
  );
}

/**
 * The request queues of a deployment: one BullMQ queue per shard (under the shard's hash tag), or one. A request id
 * names its shard, so lane heads go to their queue by id; pause, resume and counts cover them all.
 */
export class RequestQueues {
  readonly all: readonly Queue[];
  /** How the lane heads of projects share the queues (admission.lua): the scripts that add heads take its argument. */
  readonly admission: Admission;
  /** Lane heads to add at the end of this turn of the event loop, by queue and delay. */
  private readonly turn = new Map<string, { ids: string[]; added: Promise<void> }>();

  constructor(
    connection: RedisClient,
    private readonly keys: RedisKeys,
    admission: AdmissionSettings = { weights: {}, slots: DEFAULT_SLOTS },
  ) {
    this.all = keys.shards.map((k) => openRequestQueue(connection, k.prefix));
    this.admission = new Admission(connection, keys, admission);
  }

  /** The queue of a shard's keys. */
  of(keys: RedisKeys): Queue {
    return this.all[Math.max(0, keys.shardIndex)]!;
  }

  /**
   * Adds lane heads to their shards' queues (after `delayMs`: a turn gap). Adding an id whose job still exists is a
   * no-op, so a double add is harmless. The adds of one turn of the event loop go to Redis together, one addBulk per
   * queue and delay: one write, not one per lane head (a worker adds the next head of most lanes it finishes).
   */
  add(ids: readonly string[], delayMs = 0): Promise<void> {
    if (ids.length === 0) return Promise.resolve();
    const byQueue = groupBy(ids, (id) => this.of(this.keys.forId(id)));
    return Promise.all([...byQueue].map(([queue, group]) => this.inTurn(queue, group, delayMs))).then(() => undefined);
  }

  /** Joins this turn's adds to `queue` with this delay; they are sent once the turn's I/O has run. */
  private inTurn(queue: Queue, ids: readonly string[], delayMs: number): Promise<void> {
    const key = `${this.all.indexOf(queue)}:${delayMs}`;
    let pending = this.turn.get(key);
    if (!pending) {
      const batch: string[] = [];
      const added = new Promise((resolve) => setImmediate(resolve)).then(() => {
        this.turn.delete(key);
        return addJobs(queue, batch, delayMs);
      });
      pending = { ids: batch, added };
      this.turn.set(key, pending);
    }
    // One by one: a spread of a very long list (over ~100k) would overflow the call stack.
    for (const id of ids) pending.ids.push(id);
    return pending.added;
  }

  async pause(): Promise<void> {
    await Promise.all(this.all.map((q) => q.pause()));
  }

  async resume(): Promise<void> {
    await Promise.all(this.all.map((q) => q.resume()));
  }

  /** Job counts summed over the shards' queues. */
  async getJobCounts(...types: JobType[]): Promise<Record<string, number>> {
    const sums: Record<string, number> = {};
    for (const counts of await Promise.all(this.all.map((q) => q.getJobCounts(...types)))) {
      for (const [type, n] of Object.entries(counts)) sums[type] = (sums[type] ?? 0) + n;
    }
    return sums;
  }

  /** Worker processes seen on any shard: a process's BullMQ workers share its name (see worker-pool.ts). */
  async getWorkersCount(): Promise<number> {
    const perQueue = await Promise.all(
      this.all.map(async (q) => new Set((await q.getWorkers()).map((w) => w.rawname)).size),
    );
    return Math.max(...perQueue);
  }

  async close(): Promise<void> {
    await Promise.all(this.all.map((q) => q.close()));
  }
}

async function addJobs(queue: Queue, ids: readonly string[], delayMs: number): Promise<void> {
  if (ids.length === 1) {
    await queue.add(JOB_NAME, {}, { ...JOB_OPTIONS, jobId: ids[0]!, ...(delayMs > 0 ? { delay: delayMs } : {}) });
    return;
  }
  await queue.addBulk(
    ids.map((id) => ({
      name: JOB_NAME,
      data: {},
      opts: { ...JOB_OPTIONS, jobId: id, ...(delayMs > 0 ? { delay: delayMs } : {}) },
    })),
  );
}
