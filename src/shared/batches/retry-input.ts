import type { RedisClient } from '../redis/redis.js';
import type { RedisKeys } from '../keys.js';
import { readBatchRequests, readConversation } from './read-store.js';
import type { FinishedStatus } from '../request-record.js';

/** Which requests of a batch a retry sends again. */
export interface RetrySelection {
  batchId: string;
  /** Final statuses to retry (default: every one but succeeded). */
  statuses: FinishedStatus[];
  /** Only failures with this error code. */
  code?: string;
}

export const RETRYABLE_STATUSES: FinishedStatus[] = ['failed', 'cancelled', 'skipped', 'expired'];

/**
 * The input lines of a retry: each selected request as a chat line with its custom_id, userid (the same user, so the
 * same memory), model, body and expectations. A "full" history turn carries the conversation it was sent with.
 */
export async function* retryLines(redis: RedisClient, keys: RedisKeys, sel: RetrySelection): AsyncGenerator<string> {
  for await (const r of readBatchRequests(redis, keys, sel.batchId)) {
    if (!(sel.statuses as string[]).includes(r.status)) continue;
    if (sel.code !== undefined && r.error?.code !== sel.code) continue;
    const own = Array.isArray(r.body.messages) ? r.body.messages : [];
    const earlier =
      r.history === 'full' && r.prev
        ? (JSON.parse((await readConversation(redis, keys, r.prev)) ?? '[]') as unknown[])
        : [];
    const line = {
      ...r.body,
      custom_id: r.customId,
      userid: r.userid,
      model: r.model,
      messages: [...earlier, ...own],
      on_failure: r.onFailure,
      ...(r.expect ? { expect: r.expect } : {}),
    };
    yield `${JSON.stringify(line)}\n`;
  }
}
