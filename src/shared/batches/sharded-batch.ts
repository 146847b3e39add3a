import type { RedisClient } from '../redis/redis.js';
import { defineScript } from '../redis/script-contract.js';
import type { RedisKeys } from '../keys.js';
import { batchPartId } from '../shard-ids.js';
import { BATCH_FINAL_STATUS, batchEnded } from '../batch-record.js';

/**
 * A batch in a sharded deployment (CHATQ_SHARDS > 1) is a record in the base tag (name, project, status of its import,
 * cancel) plus one part per shard: a batch of its own (`<batch>_s<i>`, with `parent`) under the shard's tag, holding
 * the requests of the users that shard has. Workers run parts like any batch, each in its own slot; readers combine
 * the parts, and the batch ends (status, webhook) once every part has.
 */

const endScript = defineScript<
  {
    batch_id: string;
    /** Its final status. */
    status: 'completed' | 'cancelled' | 'expired';
    now: number;
    ttl_s: number;
    /** Its parts' summed counters, by field. */
    counters: Record<string, string>;
  },
  /** The batch's status afterwards. */
  { status: string }
>()({
  file: new URL('./end-sharded-batch.lua', import.meta.url),
  // The batch, the batch events, the open sharded batches (it leaves them).
  keys: ['batch', 'events', 'open'],
  args: { batch_id: 'string', status: 'string', now: 'whole', ttl_s: 'whole', counters: 'table' },
});

/** Counters a reader sums over a batch's parts (plus the error:<code> ones). */
const SUMMED = [
  'enqueued',
  'total',
  'done',
  'succeeded',
  'failed',
  'cancelled',
  'skipped',
  'expired',
  'eval_pass',
  'eval_fail',
];
const AT_WORK = new Set(['in_progress', 'cancelling', 'expiring']);

export interface BatchPart {
  keys: RedisKeys;
  id: string;
}

/** The parts of a batch whose record says it is sharded (none for any other). */
export function partsOf(keys: RedisKeys, batchId: string, record: Record<string, string>): BatchPart[] {
  const count = Number(record.shards) || 0;
  return Array.from({ length: count }, (_, i) => {
    const id = batchPartId(batchId, i, count);
    return { keys: keys.forId(id), id };
  });
}

export async function readParts(redis: RedisClient, parts: readonly BatchPart[]): Promise<Record<string, string>[]> {
  return Promise.all(parts.map((p) => redis.hgetall(p.keys.batch(p.id))));
}

/** A sharded batch that ended from its parts: its record holds their summed counters (end-sharded-batch.lua). */
export const endedWithParts = (own: Record<string, string>) =>
  (Object.values(BATCH_FINAL_STATUS) as string[]).includes(own.status ?? '');

/** The status a batch has from its parts': ended once all have, by how they ended. */
function combinedStatus(own: string, parts: readonly Record<string, string>[]): string {
  if (!AT_WORK.has(own)) return own;
  const statuses = parts.map((p) => p.status ?? 'validating');
  if (statuses.every(batchEnded)) {
    if (own === 'expiring' || statuses.includes('expired')) return 'expired';
    return own === 'cancelling' || statuses.includes('cancelled') ? 'cancelled' : 'completed';
  }
  if (own === 'cancelling' || statuses.includes('cancelling')) return 'cancelling';
  return own === 'expiring' || statuses.includes('expiring') ? 'expiring' : own;
}

/** The batch's record with its parts' counters summed and its status from theirs. */
export function combineParts(
  own: Record<string, string>,
  parts: readonly Record<string, string>[],
): Record<string, string> {
  const sums: Record<string, number> = {};
  for (const part of parts) {
    for (const [field, value] of Object.entries(part)) {
      if (SUMMED.includes(field) || field.startsWith('error:')) sums[field] = (sums[field] ?? 0) + Number(value);
    }
  }
  const status = combinedStatus(own.status ?? '', parts);
  const combined: Record<string, string> = {
    ...own,
    ...Object.fromEntries(Object.entries(sums).map(([k, v]) => [k, String(v)])),
    status,
  };
  if (status !== own.status && batchEnded(status)) {
    combined[`${status}_at`] = String(Math.max(...parts.map((p) => Number(p[`${status}_at`] ?? p.completed_at ?? 0))));
  }
  if (!batchEnded(own.status ?? '')) delete combined.total;
  return combined;
}

/**
 * Ends a sharded batch whose parts have all ended: its status, counters and the batch's webhook event (once: the
 * script does nothing to a batch that has ended). Called by whoever sees a part end (the webhook dispatcher, the
 * importer, a cancel); the reconciler calls it for the batches still open. A batch that ended otherwise (its import
 * failed) leaves the open set.
 */
export async function endIfPartsEnded(
  redis: RedisClient,
  keys: RedisKeys,
  batchId: string,
  ttlS: number,
): Promise<string | undefined> {
  const own = await redis.hgetall(keys.batch(batchId));
  if (!own.status) {
    await redis.srem(keys.openShardedBatches, batchId);
    return undefined;
  }
  const parts = partsOf(keys, batchId, own);
  const combined = AT_WORK.has(own.status ?? '') ? combineParts(own, await readParts(redis, parts)) : own;
  if (parts.length === 0 || AT_WORK.has(combined.status ?? '') || combined.status === 'validating')
    return combined.status;
  const counters = Object.fromEntries(
    Object.entries(combined).filter(([k]) => SUMMED.includes(k) || k.startsWith('error:')),
  );
  const { status } = await endScript.run(
    redis,
    { batch: keys.batch(batchId), events: keys.events, open: keys.openShardedBatches },
    {
      batch_id: batchId,
      status: combined.status as 'completed' | 'cancelled' | 'expired',
      now: Date.now(),
      ttl_s: ttlS,
      counters,
    },
  );
  return status;
}
