import { cancelBatch } from '../shared/batches/cancel-batch.js';
import { failImport, type ImportError } from '../shared/batches/import-failure.js';
import { endIfPartsEnded } from '../shared/batches/sharded-batch.js';
import type { RedisKeys } from '../shared/keys.js';
import { describeRedisError } from '../shared/redis/redis-errors.js';
import { defineScript } from '../shared/redis/script-contract.js';
import { ImportFailedError } from './import-errors.js';
import { IMPORT_LEASE_MS, type ImportLeases } from './import-leases.js';
import type { ProducerContext } from './producer-context.js';

const finalizeScript = defineScript<
  {
    batch_id: string;
    now: number;
    rejected_lines: number;
    /** Applied once the batch is complete (s). */
    ttl_s: number;
  },
  /** The batch's status. */
  { status: string }
>()({
  file: new URL('./finalize-batch.lua', import.meta.url),
  keys: [
    'batch',
    'batch_requests',
    'batch_custom_ids',
    'batch_errors',
    // The batch index (the batches whose records have expired leave it here).
    'batch_index',
    'importing',
    // The importer's lease and its memory reserve.
    'importer',
    'reserve',
    'events',
  ],
  args: { batch_id: 'string', now: 'whole', rejected_lines: 'whole', ttl_s: 'whole' },
});

/**
 * Ends an import whose input was read to the end: its parts (a sharded batch's) and then the batch turn
 * "in_progress" (or end, when nothing is left to run); a cancel asked while it was importing is carried out now.
 */
export async function endImport(
  ctx: ProducerContext,
  batchId: string,
  leases: ImportLeases,
  rejectedLines: number,
): Promise<string> {
  leases.stop();
  const { redis, keys } = ctx;
  const parts = leases.sharded ? leases.targets : [];
  const finalize = async (k: RedisKeys, id: string, rejected: number) =>
    (
      await finalizeScript.run(
        redis,
        {
          batch: k.batch(id),
          batch_requests: k.batchRequests(id),
          batch_custom_ids: k.batchCustomIds(id),
          batch_errors: k.batchErrors(id),
          batch_index: k.batches,
          importing: k.importing,
          importer: k.batchImporter(id),
          reserve: k.batchReserve(id),
          events: k.events,
        },
        { batch_id: id, now: Date.now(), rejected_lines: rejected, ttl_s: ctx.resultTtlS },
      )
    ).status;
  await Promise.all(parts.map((t) => finalize(t.keys, t.id, 0)));
  let status = await finalize(keys, batchId, rejectedLines);
  if (status === 'in_progress' && (await redis.hexists(keys.batch(batchId), 'cancel_requested'))) {
    status = await cancelBatch(redis, keys, ctx.queues, batchId, ctx.resultTtlS, {
      code: 'cancelled',
      message: 'cancelled before it was sent',
    });
  }
  // Parts that ended while the import went on (or were empty) end the batch now.
  if (parts.length > 0) status = (await endIfPartsEnded(redis, keys, batchId, ctx.resultTtlS)) ?? status;
  return status;
}

/** The enqueue script's answer to an importer whose lease lapsed while it could not reach Redis. */
function importLost(err: unknown): ImportError | undefined {
  const message = err instanceof Error ? err.message : '';
  if (!message.startsWith('IMPORT_LOST ')) return undefined;
  return {
    code: 'import_interrupted',
    message: `${message.slice('IMPORT_LOST '.length)} (this process could not reach Redis for longer than the lease, ${IMPORT_LEASE_MS / 1000} s)`,
  };
}

/** Records why one target's import stopped (it turns "failed"); when even that is refused, it is left for the reconciler. */
async function failTarget(
  ctx: ProducerContext,
  keys: RedisKeys,
  batchId: string,
  owner: string,
  problem: ImportError,
  rejectedLines: number,
): Promise<string> {
  try {
    return await failImport(ctx.redis, keys, ctx.queues, batchId, problem, rejectedLines, ctx.resultTtlS, owner);
  } catch {
    // Redis refused even that (gone, or still full): the import lease lapses and the reconciler ends the batch.
    return 'validating';
  }
}

/**
 * Ends an import that stopped before the end of its input (`err`): its parts and the batch turn "failed" with the
 * reason. Returns the error to throw, saying what was enqueued before it stopped.
 */
export async function abandonImport(
  ctx: ProducerContext,
  batchId: string,
  leases: ImportLeases,
  err: unknown,
  counts: { rejectedLines: number; acceptedRequests: number },
): Promise<ImportFailedError> {
  leases.stop();
  const problem: ImportError = importLost(err) ??
    describeRedisError(err) ?? { code: 'import_failed', message: err instanceof Error ? err.message : String(err) };
  if (leases.sharded)
    await Promise.all(leases.targets.map((t) => failTarget(ctx, t.keys, t.id, t.lease.owner, problem, 0)));
  const status = await failTarget(ctx, ctx.keys, batchId, leases.own.owner, problem, counts.rejectedLines);
  return new ImportFailedError(batchId, problem, status, counts.acceptedRequests);
}
