import { randomUUID } from 'node:crypto';
import { LuaScript, type RedisClient } from '../shared/redis/redis.js';
import type { RedisKeys } from '../shared/keys.js';

const beginScript = new LuaScript(new URL('./begin-import.lua', import.meta.url));

export const IMPORT_LEASE_MS = 30_000;
/**
 * Set aside in Redis while importing: freed to record the import's failure when Redis is full. A chunk (see
 * submit-batch's caps) can take Redis past maxmemory by less than this.
 */
const RESERVE_BYTES = 1024 * 1024;

export class ImportRefused extends Error {}

/**
 * The importer's lease on a batch, renewed while the import runs: an import whose process died loses it, and is then
 * ended by the reconciler (or by a cancel) instead of staying "validating" forever.
 */
export class ImportGuard {
  private timer: NodeJS.Timeout | undefined;

  private constructor(
    /** The batch's project. */
    readonly project: string,
    /** The highest request seq of earlier imports of this batch (a re-run adds only what they lack). */
    readonly earlierSeq: number,
    /** Who holds the lease: this import, and no other, may write the batch's requests. */
    readonly owner: string,
  ) {}

  static async begin(
    redis: RedisClient,
    keys: RedisKeys,
    batchId: string,
    mode: 'new' | 'resume',
    onImportError: 'cancel' | 'keep',
  ): Promise<ImportGuard> {
    const k = [
      keys.batch(batchId),
      keys.batchErrors(batchId),
      keys.importing,
      keys.batchImporter(batchId),
      keys.batchRequests(batchId),
      keys.batchCustomIds(batchId),
      keys.batchReserve(batchId),
    ];
    const owner = randomUUID();
    const [before, seq, project] = (await beginScript.run(redis, k, [
      batchId,
      owner,
      IMPORT_LEASE_MS,
      RESERVE_BYTES,
      mode,
      onImportError,
    ])) as [string, number, string];
    if (before === 'missing') throw new ImportRefused(`no batch "${batchId}"`);
    if (before === 'busy') throw new ImportRefused(`batch ${batchId} is being imported by another process right now`);
    if (mode === 'new' ? before !== 'validating' : before === 'cancelled' || before === 'cancelling') {
      throw new ImportRefused(
        `batch ${batchId} is ${before}: it takes no more requests${mode === 'resume' ? '; submit the file as a new batch' : ''}`,
      );
    }
    const started = new ImportGuard(project, seq, owner);
    started.timer = setInterval(
      () => void redis.pexpire(keys.batchImporter(batchId), IMPORT_LEASE_MS).catch(() => undefined),
      IMPORT_LEASE_MS / 3,
    );
    started.timer.unref();
    return started;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
