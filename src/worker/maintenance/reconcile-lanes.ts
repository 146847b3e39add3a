import type { RedisClient } from '../../shared/redis/redis.js';
import { repairLanes } from '../store/lane-repair.js';
import { keepLease } from '../capacity/held-lease.js';
import { importAlive } from '../../shared/batches/batch-imports.js';
import { cancelBatch } from '../../shared/batches/cancel-batch.js';
import { failImport } from '../../shared/batches/import-failure.js';
import type { RedisKeys } from '../../shared/keys.js';
import { endIfPartsEnded } from '../../shared/batches/sharded-batch.js';
import type { RequestQueues } from '../../shared/redis/request-queue.js';
import type { RequestStore } from '../store/request-store.js';
import { applyUsageRetention, type Retention, type RetentionReport } from './usage-retention.js';

export interface ReconcileReport {
  lanes: number;
  readded: number;
  lostJobs: number;
  /** Imports whose process died: their batches ended (failed, or cancelled when a cancel was waiting for them). */
  endedImports: number;
  /** Batches whose completion window ended here. */
  expired: number;
  usage?: RetentionReport;
}

const ZERO = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0, cached_tokens: 0, reasoning_tokens: 0 };

/**
 * Repairs the crash windows of the lane invariant: a lane head without a BullMQ job (the process died between the
 * Lua script and the add), neither its own nor the one its lane was handed to, is added again; a job that BullMQ
 * gave up on (stalled too often) fails the request it was serving and hands the lane on. Only one process reconciles at a time (a lock in Redis); adding a live job twice is harmless.
 */
export async function reconcileLanes(
  redis: RedisClient,
  keys: RedisKeys,
  queues: RequestQueues,
  store: RequestStore,
  owner: string,
  lockMs: number,
  retention: Retention,
): Promise<ReconcileReport | null> {
  const locked = await redis.set(keys.reconcilerLock, owner, 'PX', lockMs, 'NX');
  if (!locked) return null;
  // The lock is held for as long as the pass takes, then left to lapse: one pass per lockMs, whoever makes it.
  const stopRenewing = keepLease(() => redis, keys.reconcilerLock, owner, lockMs);
  try {
    return await reconcilePass(redis, keys, queues, store, lockMs, retention);
  } finally {
    stopRenewing();
  }
}

/** One pass of the reconciler, under its lock. */
async function reconcilePass(
  redis: RedisClient,
  keys: RedisKeys,
  queues: RequestQueues,
  store: RequestStore,
  lockMs: number,
  retention: Retention,
): Promise<ReconcileReport> {
  const ttlS = retention.ttlS;
  const report: ReconcileReport = { lanes: 0, readded: 0, lostJobs: 0, endedImports: 0, expired: 0 };
  report.endedImports = await endDeadImports(redis, keys, queues, lockMs, ttlS);
  report.expired = await expireDueBatches(redis, keys, queues, ttlS);
  await endSettledBatches(redis, keys, ttlS);
  report.usage = await applyUsageRetention(redis, keys, retention);
  // The base tag of a sharded deployment holds batch records, not lanes or jobs (each shard's pass sees to those).
  if (keys.shardCount > 1 && keys.shardIndex < 0) return report;

  // Pages of failed jobs, each removed once handled (bounded, in case a removal keeps failing).
  for (let page = 0; page < 50; page++) {
    const failed = await queues.of(keys).getFailed(0, 199);
    if (failed.length === 0) break;
    for (const job of failed) {
      const served = await store.servedBy(job.id!);
      const identity = served && (await store.identity(served));
      if (served && identity) {
        await store.finish(served, identity, {
          status: 'failed',
          error: {
            code: 'worker_lost',
            message: `the job was abandoned by its workers: ${job.failedReason ?? 'unknown reason'}`,
          },
          usage: ZERO,
          costNano: 0,
          attempts: [],
        });
      }
      await job.remove();
      report.lostJobs += 1;
    }
  }

  const repaired = await repairLanes(redis, keys, queues, lockMs);
  return { ...report, ...repaired };
}

/**
 * Batches past their completion window: what has not started ends "expired" (batch_expired), the calls in flight
 * finish, then the batch is "expired". A batch still importing expires once its import ends; one that ended
 * otherwise leaves the index.
 */
async function expireDueBatches(
  redis: RedisClient,
  keys: RedisKeys,
  queues: RequestQueues,
  ttlS: number,
): Promise<number> {
  let expired = 0;
  for (const batchId of await redis.zrangebyscore(keys.expiring, 0, Date.now(), 'LIMIT', 0, 200)) {
    const window = await redis.hget(keys.batch(batchId), 'completion_window');
    const status = await cancelBatch(redis, keys, queues, batchId, ttlS, {
      code: 'batch_expired',
      message: `not done within the batch's completion window (${window}); retry it with chatq retry --status expired`,
    });
    if (status === 'validating') continue;
    await redis.zrem(keys.expiring, batchId);
    if (status === 'expiring' || status === 'expired') expired += 1;
  }
  return expired;
}

/** Sharded batches whose parts have all ended while no dispatcher ran (or it died between the part and the batch). */
async function endSettledBatches(redis: RedisClient, keys: RedisKeys, ttlS: number): Promise<void> {
  for (const batchId of await redis.srandmember(keys.openShardedBatches, 200))
    await endIfPartsEnded(redis, keys, batchId, ttlS);
}

/** Batches left "validating" by an import whose process died (no lease, no pending job, older than a lock period). */
async function endDeadImports(
  redis: RedisClient,
  keys: RedisKeys,
  queues: RequestQueues,
  graceMs: number,
  ttlS: number,
): Promise<number> {
  let ended = 0;
  for (const batchId of await redis.srandmember(keys.importing, 200)) {
    const [status, createdAt, cancelRequested] = await redis.hmget(
      keys.batch(batchId),
      'status',
      'created_at',
      'cancel_requested',
    );
    if (status !== 'validating') {
      await redis.srem(keys.importing, batchId);
      continue;
    }
    if (Date.now() - Number(createdAt) < graceMs || (await importAlive(redis, keys, batchId))) continue;
    if (cancelRequested)
      await cancelBatch(redis, keys, queues, batchId, ttlS, {
        code: 'cancelled',
        message: 'cancelled before it was sent',
      });
    else {
      const message =
        'the process importing this batch stopped before the end of its input; re-run the same file into it (chatq enqueue FILE --batch ID) to add what is missing';
      await failImport(
        redis,
        keys,
        queues,
        batchId,
        { code: 'import_interrupted', message },
        Number(await redis.hget(keys.batch(batchId), 'rejected_lines')) || 0,
        ttlS,
      );
    }
    ended += 1;
  }
  return ended;
}
