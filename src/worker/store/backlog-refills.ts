import type { RedisKeys } from '../../shared/keys.js';
import type { AdmissionArg } from '../../shared/redis/admission.js';
import type { RedisClient } from '../../shared/redis/redis.js';
import type { RequestQueues } from '../../shared/redis/request-queue.js';
import { defineScript } from '../../shared/redis/script-contract.js';

const refillScript = defineScript<
  {
    prefix: string;
    /** What comes before a request id in its BullMQ job's key. */
    job_key: string;
    now: number;
    /** Only heads admitted before this (ms) are repaired (a job is added just after its admission). */
    before: number;
    admission: AdmissionArg;
  },
  { refill: string[]; next_due_ms?: number }
>()({
  file: new URL('./refill-queues.lua', import.meta.url),
  // The projects with heads queued or held back (named so that a cluster routes the script to its slot).
  keys: ['projects'],
  args: { prefix: 'string', job_key: 'string', now: 'whole', before: 'number', admission: 'table' },
});
/** How soon a refill that failed (Redis away, failing over) is tried again. */
const RETRY_MS = 1_000;

/**
 * Refills the projects' queued heads from their backlogs (refill-queues.lua) and adds the heads that go to BullMQ;
 * heads counted as queued for longer than `repairAfterMs` whose job is gone no longer count. Returns in how many ms
 * the next held-back head falls due (undefined: none is).
 */
export async function refillQueues(
  redis: RedisClient,
  keys: RedisKeys,
  queues: RequestQueues,
  repairAfterMs: number,
): Promise<number | undefined> {
  const now = Date.now();
  const { refill, next_due_ms } = await refillScript.run(
    redis,
    { projects: keys.queuedProjects() },
    {
      prefix: keys.prefix,
      job_key: keys.job(''),
      now,
      before: now - repairAfterMs,
      admission: await queues.admission.arg(),
    },
  );
  await queues.add(refill);
  return next_due_ms;
}

/**
 * A shard's refills when deferred heads fall due: one timer at a time, at the earliest time asked for. A head that
 * found no capacity waits in its project's backlog, out of BullMQ; the claims of the project's other heads refill it
 * as they go, and this timer when none does. A process gone leaves it to the reconciler's refill.
 */
export class BacklogRefills {
  private timer: NodeJS.Timeout | undefined;
  private due = Number.POSITIVE_INFINITY;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
    private readonly queues: RequestQueues,
    private readonly repairAfterMs: number,
  ) {}

  /** Refills in `ms` (or sooner, when a refill is due sooner already). */
  after(ms: number): void {
    const at = Date.now() + ms;
    if (at >= this.due) return;
    clearTimeout(this.timer);
    this.due = at;
    this.timer = setTimeout(() => {
      this.due = Number.POSITIVE_INFINITY;
      this.timer = undefined;
      // The next held-back head's time is the next refill's; a failed one (Redis away) is tried again in a second.
      refillQueues(this.redis, this.keys, this.queues, this.repairAfterMs).then(
        (nextDueMs) => {
          if (nextDueMs !== undefined) this.after(nextDueMs);
        },
        () => this.after(RETRY_MS),
      );
    }, ms + 5);
    this.timer.unref();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.due = Number.POSITIVE_INFINITY;
  }
}
