import type { RedisKeys } from '../keys.js';
import type { RedisClient } from './redis.js';
import { settledWithin } from '../time-bound.js';

/** How long a worker's published call slots count without a refresh (it refreshes them every third of it). */
const SLOTS_TTL_MS = 15_000;
/** How long a process reuses the capacity it read. */
const READ_EVERY_MS = 2_000;
/**
 * A read of it unanswered this long is given up: the scripts go by the last one meanwhile (a share is a pace, not a
 * guarantee), so that the master holding the base tag, stopped or failing over, holds up no shard on another master.
 */
const READ_WITHIN_MS = 1_000;
/** Heads a project alone may have queued, beyond the call slots: they stand ready while the others' jobs complete. */
const SPARE = 1.2;

/** The scripts' argument (admission.lua's `admission`): the heads one project alone may have queued, the weights. */
export interface AdmissionArg {
  c: number;
  w: Record<string, number>;
}

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
  private read = { at: Number.NEGATIVE_INFINITY, slots: 0, workers: 0 };
  private reading: Promise<void> | undefined;
  /** How many shards cannot take calls now (their master away, or its replicas not acknowledging): see heldBy. */
  private held: () => number = () => 0;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
    private readonly settings: AdmissionSettings,
  ) {}

  /**
   * The scripts' argument: the heads one project alone may have queued in a shard, and the weights. Read again in the
   * background every READ_EVERY_MS; only the first read is waited for (at most READ_WITHIN_MS), and with `fresh` one
   * that is due while the last found no worker: an import's chunks go by the slots of the workers running now, not by
   * the default from a read before they published theirs (which sends the heads past it to the backlog, to wait for
   * the claims that refill it). A read that found workers is not waited for again (a base tag's master away holds up
   * no import to the other shards).
   */
  async arg(fresh = false): Promise<AdmissionArg> {
    if (performance.now() - this.read.at > READ_EVERY_MS) {
      const reading = (this.reading ??= this.readSlots());
      if ((fresh && this.read.workers === 0) || this.read.at === Number.NEGATIVE_INFINITY) await reading;
    }
    const slots = this.read.slots || this.settings.slots;
    const working = Math.max(1, this.keys.shardCount - this.held());
    return { c: Math.ceil((slots * SPARE) / working), w: this.settings.weights };
  }

  /**
   * The slots are shared among the shards that can take calls: while `held` says some cannot (a worker knows from its
   * own scripts), the others may have more heads queued, so that the call slots the held ones would use serve them.
   */
  heldBy(held: () => number): void {
    this.held = held;
  }

  /** The worker processes live as last read (0 before the first read answered). */
  workers(): number {
    return this.read.workers;
  }

  /** One read at a time; one that fails or is given up keeps the last slots until the next. */
  private readSlots(): Promise<void> {
    return settledWithin(this.publishedSlots(), READ_WITHIN_MS, "the workers' call slots read")
      .then(
        (published) => published,
        () => this.read,
      )
      .then(({ slots, workers }) => {
        this.read = { at: performance.now(), slots, workers };
        this.reading = undefined;
      });
  }

  /**
   * The call slots of the workers whose entries have not lapsed, and how many they are; lapsed entries (a killed
   * worker's) are removed.
   */
  private async publishedSlots(): Promise<{ slots: number; workers: number }> {
    const entries = await this.redis.hgetall(this.keys.workerSlots);
    const now = Date.now();
    let slots = 0;
    let workers = 0;
    const lapsed: string[] = [];
    for (const [owner, value] of Object.entries(entries)) {
      const [n, until] = value.split(':').map(Number);
      if (until! > now) {
        slots += n!;
        workers += 1;
      } else lapsed.push(owner);
    }
    if (lapsed.length) await this.redis.hdel(this.keys.workerSlots, ...lapsed);
    return { slots, workers };
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
