import { randomUUID } from 'node:crypto';
import { DEFAULT_PROJECT, type RedisKeys } from '../shared/keys.js';
import { batchPartId } from '../shared/shard-ids.js';
import type { RedisClient } from '../shared/redis/redis.js';
import { defineScript } from '../shared/redis/script-contract.js';
import { ImportRefused } from './import-errors.js';

export const IMPORT_LEASE_MS = 30_000;
/**
 * Set aside in Redis while importing: freed to record the import's failure when Redis is full. A chunk (see
 * import-run's caps) can take Redis past maxmemory by less than this.
 */
const RESERVE_BYTES = 1024 * 1024;

type Mode = 'new' | 'resume';
type OnImportError = 'cancel' | 'keep';

const beginScript = defineScript<
  {
    batch_id: string;
    /** The importer lease: its owner and length (ms). */
    owner: string;
    lease_ms: number;
    /** Memory set aside for recording a failure (bytes). */
    reserve_bytes: number;
    /** "new": a record made "validating" for this import; "resume": a re-run adds only the missing custom_ids. */
    mode: Mode;
    on_import_error: OnImportError;
  },
  /**
   * The batch's status before ("busy": another process holds the lease; "missing": gone; or one that cannot resume),
   * and when it began, the highest request seq so far and the batch's project.
   */
  { status: string; seq?: number; project?: string }
>()({
  file: new URL('./begin-import.lua', import.meta.url),
  keys: ['batch', 'batch_errors', 'importing', 'importer', 'batch_requests', 'batch_custom_ids', 'reserve'],
  args: {
    batch_id: 'string',
    owner: 'string',
    lease_ms: 'whole',
    reserve_bytes: 'whole',
    mode: 'string',
    on_import_error: 'string',
  },
});

/**
 * The importer's lease on a batch (or a part), renewed while the import runs: an import whose process died loses it,
 * and is then ended by the reconciler (or by a cancel) instead of staying "validating" forever.
 */
interface Lease {
  /** Who holds it: this import, and no other, may write the batch's requests. */
  owner: string;
  /** The highest request seq of earlier imports (a re-run adds only what they lack). */
  earlierSeq: number;
  stop(): void;
}

/** Where an import writes requests: the batch itself, or (sharded) each of its parts, each under its own lease. */
export interface ImportTarget {
  keys: RedisKeys;
  id: string;
  lease: Lease;
  /** The project's user index keys around the userid, from keys.ts (the enqueue script builds them per user). */
  userIndex: [string, string];
}

/** An import under way: its batch's project, where it writes, and the leases it holds until it ends. */
export interface ImportLeases {
  project: string;
  /** The batch's own lease (a sharded batch's parts have theirs in `targets`). */
  own: Lease;
  targets: ImportTarget[];
  sharded: boolean;
  /** Stops renewing every lease this import holds (it ended, or failed). */
  stop(): void;
}

async function takeLease(
  redis: RedisClient,
  keys: RedisKeys,
  batchId: string,
  mode: Mode,
  onImportError: OnImportError,
): Promise<Lease & { project: string }> {
  const owner = randomUUID();
  const {
    status: before,
    seq = 0,
    project = DEFAULT_PROJECT,
  } = await beginScript.run(
    redis,
    {
      batch: keys.batch(batchId),
      batch_errors: keys.batchErrors(batchId),
      importing: keys.importing,
      importer: keys.batchImporter(batchId),
      batch_requests: keys.batchRequests(batchId),
      batch_custom_ids: keys.batchCustomIds(batchId),
      reserve: keys.batchReserve(batchId),
    },
    {
      batch_id: batchId,
      owner,
      lease_ms: IMPORT_LEASE_MS,
      reserve_bytes: RESERVE_BYTES,
      mode,
      on_import_error: onImportError,
    },
  );
  if (before === 'missing') throw new ImportRefused(`no batch "${batchId}"`);
  if (before === 'busy') throw new ImportRefused(`batch ${batchId} is being imported by another process right now`);
  if (mode === 'new' ? before !== 'validating' : before === 'cancelled' || before === 'cancelling') {
    throw new ImportRefused(
      `batch ${batchId} is ${before}: it takes no more requests${mode === 'resume' ? '; submit the file as a new batch' : ''}`,
    );
  }
  const timer = setInterval(
    () => void redis.pexpire(keys.batchImporter(batchId), IMPORT_LEASE_MS).catch(() => undefined),
    IMPORT_LEASE_MS / 3,
  );
  timer.unref();
  return { project, owner, earlierSeq: seq, stop: () => clearInterval(timer) };
}

const userIndexOf = (keys: RedisKeys, project: string) =>
  keys.userRequests(project, '\u0002').split('\u0002') as [string, string];

/**
 * Begins a batch's import: takes its lease and opens its targets. A sharded batch gets its parts made here (a batch
 * created over HTTP has none yet), each with its share of the batch's budget and the batch's completion window, and
 * each leased like the batch.
 */
export async function beginImport(
  redis: RedisClient,
  keys: RedisKeys,
  batchId: string,
  mode: Mode,
  onImportError: OnImportError,
): Promise<ImportLeases> {
  const own = await takeLease(redis, keys, batchId, mode, onImportError);
  const record = await redis.hgetall(keys.batch(batchId));
  const shards = Number(record.shards) || 1;
  if (shards !== keys.shardCount) {
    own.stop();
    throw new ImportRefused(
      `batch ${batchId} was made with CHATQ_SHARDS=${shards} (now ${keys.shardCount}): import into it with that shard count, or submit the file as a new batch`,
    );
  }
  const leases = (targets: ImportTarget[]): ImportLeases => ({
    project: own.project,
    own,
    targets,
    sharded: shards > 1,
    stop: () => {
      own.stop();
      for (const t of targets) t.lease.stop();
    },
  });
  if (shards === 1) return leases([{ keys, id: batchId, lease: own, userIndex: userIndexOf(keys, own.project) }]);
  const taken = await Promise.allSettled(
    keys.shards.map(async (k, i): Promise<ImportTarget> => {
      const id = batchPartId(batchId, i, shards);
      const made = await redis.hsetnx(k.batch(id), 'status', 'validating');
      if (made) {
        const expiresAt = Number(record.expires_at);
        const tx = redis.multi().hset(k.batch(id), {
          parent: batchId,
          project: own.project,
          created_at: record.created_at ?? Date.now(),
          // A budget is shared out evenly: no part can take the batch past it.
          ...(record.max_cost_nano !== undefined
            ? { max_cost_nano: Math.floor(Number(record.max_cost_nano) / shards) }
            : {}),
          ...(expiresAt ? { completion_window: record.completion_window ?? '', expires_at: expiresAt } : {}),
        });
        if (expiresAt) tx.zadd(k.expiring, expiresAt, id);
        await tx.sadd(k.importing, id).exec();
      }
      const lease = await takeLease(redis, k, id, made ? 'new' : mode, onImportError);
      return { keys: k, id, lease, userIndex: userIndexOf(k, own.project) };
    }),
  );
  const parts = taken.flatMap((t) => (t.status === 'fulfilled' ? [t.value] : []));
  const refused = taken.find((t) => t.status === 'rejected');
  if (refused) {
    // No lease of an import that does not go ahead is renewed: each lapses, and the reconciler ends the batch.
    leases(parts).stop();
    throw refused.reason;
  }
  return leases(parts);
}
