import type { RedisKeys } from '../keys.js';
import type { RedisClient } from './redis.js';

/** How long a worker's published call slots count without a refresh (it refreshes them every third of it). */
const SLOTS_TTL_MS = 15_000;
/** How long a process reuses the capacity it read. */
const READ_EVERY_MS = 2_000;
/** Heads a project alone may have queued, beyond the call slots: they stand ready while the others' jobs complete. */
const SPARE = 1.2;

export interface AdmissionSettings {
  /** Each project's weight (CHATQ_PROJECT_WEIGHTS; 1 when absent). */
  weights: Record<string, number>;
  /** Call slots assumed while no worker has published its own (CHATQ_CONCURRENCY). */
  slots: number;
}

/**
 * What admission.lua shares between projects: the call slots of the workers running now (each worker process
 * publishes its own), and the projects' weights. Scripts that add lane heads to BullMQ take it as one argument.
 */
export class Admission {
  private read = { at: Number.NEGATIVE_INFINITY, slots: 0 };

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
    private readonly settings: AdmissionSettings,
  ) {}

  /** The scripts' argument: the heads one project alone may have queued in a shard, and the weights. */
  async arg(): Promise<string> {
    if (performance.now() - this.read.at > READ_EVERY_MS) {
      this.read = { at: performance.now(), slots: await this.publishedSlots() };
    }
    const slots = this.read.slots || this.settings.slots;
    return JSON.stringify({ c: Math.ceil((slots * SPARE) / this.keys.shardCount), w: this.settings.weights });
  }

  /** The call slots of the workers whose entries have not lapsed; lapsed entries (a killed worker's) are removed. */
  private async publishedSlots(): Promise<number> {
    const entries = await this.redis.hgetall(this.keys.workerSlots);
    const now = Date.now();
    let slots = 0;
    const lapsed: string[] = [];
    for (const [owner, value] of Object.entries(entries)) {
      const [n, until] = value.split(':').map(Number);
      if (until! > now) slots += n!;
      else lapsed.push(owner);
    }
    if (lapsed.length) await this.redis.hdel(this.keys.workerSlots, ...lapsed);
    return slots;
  }

  /** A worker process's call slots, published until `stop` (which withdraws them). */
  static publish(redis: RedisClient, keys: RedisKeys, owner: string, slots: number): { stop(): Promise<void> } {
    const put = () =>
      redis.hset(keys.workerSlots, owner, `${slots}:${Date.now() + SLOTS_TTL_MS}`).catch(() => undefined);
    void put();
    const timer = setInterval(put, SLOTS_TTL_MS / 3);
    timer.unref();
    return {
      async stop() {
        clearInterval(timer);
        await redis.hdel(keys.workerSlots, owner).catch(() => undefined);
      },
    };
  }
}
