import { describeRedisError } from '../../shared/redis/redis-errors.js';

/** Tries of a write that Redis refused or did not answer (gone, failing over), and the most time between two. */
const PERSIST_TRIES = 12;
const PERSIST_BACKOFF_MOST_MS = 2_000;
/**
 * Runs a write again while Redis refuses it or cannot be reached (a failover, a dropped connection): the writes that
 * record a call (its result, its attempt) must not be lost to a moment's error, or the call would be made again.
 * Transitions are idempotent (a result is written once: finish-request.lua; a requeue of a run taken over changes
 * nothing), so a write whose reply was lost may go again. Other errors, and the last try's, are thrown.
 */
export async function persist<T>(write: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await write();
    } catch (err) {
      if (attempt >= PERSIST_TRIES || !describeRedisError(err)) throw err;
      await new Promise((r) => setTimeout(r, Math.min(PERSIST_BACKOFF_MOST_MS, 25 * 2 ** attempt)));
    }
  }
}
