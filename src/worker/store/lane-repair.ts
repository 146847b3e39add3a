import type { RedisKeys } from '../../shared/keys.js';
import type { RedisClient } from '../../shared/redis/redis.js';
import type { RequestQueues } from '../../shared/redis/request-queue.js';
import { defineScript } from '../../shared/redis/script-contract.js';
import { refillQueues } from './backlog-refills.js';

const joblessScript = defineScript<
  {
    prefix: string;
    now: number;
    /** A head admitted within this (ms) may have its add on the way. */
    interval_ms: number;
    /** The heads to look at: [userid, request id] each. */
    heads: [string, string][];
  },
  /** The ids that are still heads without a job. */
  { jobless: string[] }
>()({
  file: new URL('./jobless-heads.lua', import.meta.url),
  // The lane set (it names the slot: every key read is in its tag).
  keys: ['lanes'],
  args: { prefix: 'string', now: 'whole', interval_ms: 'whole', heads: 'list' },
});

/**
 * Adds a BullMQ job for every lane head of `keys`' tag that has none (neither its own nor the one its lane was handed
 * to), unless it was admitted within `addingMs` (its add may be on the way); empty lanes leave the set, and the
 * projects' queues are refilled (heads counted as queued for longer than `addingMs` whose job is gone make room).
 * Returns the lanes looked at and the heads added. Adding a live job again is harmless (its id is the request's).
 */
export async function repairLanes(
  redis: RedisClient,
  keys: RedisKeys,
  queues: RequestQueues,
  addingMs: number,
): Promise<{ lanes: number; readded: number }> {
  const report = { lanes: 0, readded: 0 };
  let cursor = '0';
  do {
    const [nextCursor, userids] = await redis.sscan(keys.lanes, cursor, 'COUNT', 500);
    cursor = nextCursor;
    if (userids.length === 0) continue;
    report.lanes += userids.length;
    const heads = (await userids.reduce((p, u) => p.lindex(keys.lane(u), 0), redis.pipeline()).exec())!.map(
      ([, v]) => v as string | null,
    );
    const empty = userids.filter((_, i) => !heads[i]);
    if (empty.length) await redis.srem(keys.lanes, ...empty);
    // Heads that look jobless here are looked at again in one step (jobless-heads.lua): most have just finished.
    const lanes = userids.flatMap((u, i): [string, string][] => (heads[i] ? [[u, heads[i]!]] : []));
    const missing = lanes.length
      ? (
          await joblessScript.run(
            redis,
            { lanes: keys.lanes },
            { prefix: keys.prefix, now: Date.now(), interval_ms: addingMs, heads: lanes },
          )
        ).jobless
      : [];
    await queues.add(missing);
    report.readded += missing.length;
  } while (cursor !== '0');
  // Due heads of the projects' backlogs go to BullMQ (a worker that deferred them may be gone), and heads counted as
  // queued whose job was lost make room: not lanes repaired, the queues kept.
  await refillQueues(redis, keys, queues, addingMs);
  return report;
}
