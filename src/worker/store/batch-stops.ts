import { cancelBatch, type CancelReason } from '../../shared/batches/cancel-batch.js';
import type { RedisKeys } from '../../shared/keys.js';
import type { RedisClient } from '../../shared/redis/redis.js';
import type { RequestQueues } from '../../shared/redis/request-queue.js';
import type { AttemptEntry } from '../../shared/request-record.js';
import type { RequestOwner, StoppedClaim } from './request-claims.js';

const CANCELLED: CancelReason = { code: 'cancelled', message: 'cancelled before it was sent' };
const EXPIRED: CancelReason = { code: 'batch_expired', message: "not done within the batch's completion window" };
const IMPORT_STOPPED: CancelReason = { code: 'import_failed', message: "not sent: the batch's import failed" };

/** Gives a running request back to waiting, unclaimed and with no attempt counted (RequestStore.release). */
type Release = (id: string, owner: RequestOwner, attempts: AttemptEntry[]) => Promise<void>;

/**
 * A worker's side of a batch that stops (cancelled, expired, its import failed, over its budget): whether a request
 * should still be sent, and the cancel of the unsent ones a run finds stopped.
 */
export class BatchStops {
  /** Batch-wide cancels this process has under way, by batch. */
  private readonly walks = new Map<string, Promise<unknown>>();

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
    private readonly queues: RequestQueues,
    private readonly ttlS: number,
    private readonly release: Release,
  ) {}

  /** Not sent: the batch's budget cannot pay for it; it and the rest of the batch are cancelled. */
  async cancelOverBudget(id: string, owner: RequestOwner): Promise<void> {
    await this.release(id, owner, []);
    await this.redis.hincrby(this.keys.metrics, 'budget_refusals', 1);
    await cancelBatch(this.redis, this.keys, this.queues, owner.batch, this.ttlS, {
      code: 'budget_exceeded',
      message: 'not sent: it could take the batch past its max_cost_usd',
    });
  }

  /** Whether a request of this batch should still be sent: not once the batch stops (see claim-request.lua). */
  async batchGoesOn(batch: string): Promise<boolean> {
    const [status, onImportError, cancelAsked] = await this.redis.hmget(
      this.keys.batch(batch),
      'status',
      'on_import_error',
      'cancel_requested',
    );
    if (cancelAsked !== null) return false;
    return status === 'in_progress' || status === 'validating' || (status === 'failed' && onImportError === 'keep');
  }

  /** Not sent: its batch stopped while it waited for capacity; it goes back unclaimed and ends the way the others did. */
  async cancelWithBatch(id: string, owner: RequestOwner, attempts: AttemptEntry[]): Promise<void> {
    await this.release(id, owner, attempts);
    const status = (await this.redis.hget(this.keys.batch(owner.batch), 'status')) ?? 'cancelling';
    await this.cancelStopped({ stoppedBatch: owner.batch, status, id });
  }

  /**
   * Cancels the unsent requests of a batch that stopped, with the reason its cancel recorded, once the batch-wide
   * cancel that stopped it could not finish (Redis full, a process killed) or ran before the request was left
   * unclaimed. Callers in this process share a walk of the batch under way, and make one of their own only when
   * their request is still unsent after it: a stopped batch costs one walk at a time, not one per request.
   */
  async cancelStopped(stopped: StoppedClaim): Promise<void> {
    const batch = stopped.stoppedBatch;
    const under = this.walks.get(batch);
    if (under) {
      await under.catch(() => undefined);
      const status = await this.redis.hget(this.keys.request(stopped.id), 'status');
      if (status !== 'queued' && status !== 'retrying') return;
    }
    const stored = await this.redis.hget(this.keys.batch(batch), 'cancel_reason');
    const reason: CancelReason = stored
      ? (JSON.parse(stored) as CancelReason)
      : stopped.status === 'failed'
        ? IMPORT_STOPPED
        : stopped.status.startsWith('expir')
          ? EXPIRED
          : CANCELLED;
    const walk = cancelBatch(this.redis, this.keys, this.queues, batch, this.ttlS, reason).finally(() => {
      if (this.walks.get(batch) === walk) this.walks.delete(batch);
    });
    this.walks.set(batch, walk);
    await walk;
  }
}
