import { describeRedisError } from '../../shared/redis/redis-errors.js';

/**
 * A script of a request normally answers in milliseconds: one that takes longer than this (beyond its WAIT for the
 * replicas) went to a master that stopped answering, or it failed on Redis.
 */
const STALL_MS = 1_500;
/**
 * When the lanes are repaired after such a stall ends: a master that answers again after its replica was promoted
 * runs the commands queued for it and answers them before it learns it was demoted, and then drops what they wrote
 * (a lane's next job among them); the runs that were waiting on it settle within a few seconds.
 */
const REPAIR_AFTER_MS = [500, 1_000, 2_000, 4_000];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms).unref());

/**
 * Watches the scripts of one shard's requests and, when one stalled or failed on Redis, repairs the shard's lanes a
 * few times in the seconds after (`repair`: re-adds the jobs of lane heads left without one): the users held by a
 * master that came back go on at once, not at the reconciler's next pass. One series of repairs at a time.
 */
export class StallWatch {
  private series: Promise<void> | undefined;
  private stopped = false;
  /** Scripts sent and not answered yet, and when the latest answer (or failure) came. */
  private outstanding = 0;
  private answeredAt = performance.now();

  constructor(
    private readonly repair: () => Promise<number>,
    private readonly repaired: (readded: number) => void,
    /** The replicas' acknowledgement a script may wait for (CHATQ_REDIS_WAIT_MS), when it waits. */
    waitMs = 0,
    private readonly stallMs = STALL_MS + waitMs,
  ) {}

  /** `script`'s answer and whether it stalled (its master may drop what it wrote), noting a stall or a Redis failure. */
  observe<T>(script: Promise<T>): Promise<{ answer: T; stalled: boolean }> {
    const sent = performance.now();
    this.outstanding += 1;
    const answered = () => {
      this.outstanding -= 1;
      this.answeredAt = performance.now();
    };
    return script.then(
      (answer) => {
        answered();
        const stalled = performance.now() - sent >= this.stallMs;
        if (stalled) this.stalled();
        return { answer, stalled };
      },
      (err: unknown) => {
        answered();
        if (describeRedisError(err)?.code === 'redis_unavailable') this.stalled();
        throw err;
      },
    );
  }

  /** Whether scripts are waiting and none has been answered for longer than a stall: their master is away. */
  holding(): boolean {
    return this.outstanding > 0 && performance.now() - this.answeredAt >= this.stallMs;
  }

  stop(): void {
    this.stopped = true;
  }

  private stalled(): void {
    this.series ??= (async () => {
      for (const ms of REPAIR_AFTER_MS) {
        await sleep(ms);
        if (this.stopped) break;
        const readded = await this.repair().catch(() => 0);
        if (readded) this.repaired(readded);
      }
    })().finally(() => {
      this.series = undefined;
    });
  }
}
