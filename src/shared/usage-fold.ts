import { LuaScript, type RedisClient } from './redis.js';
import { everyTag, type RedisKeys } from './keys.js';

const foldScript = new LuaScript(new URL('./fold-usage.lua', import.meta.url));

/** Records folded per script call. */
const FOLD_BATCH = 2_000;
/** Distinct model names kept per project; usage of others is counted as "other". */
export const MAX_MODELS = 200;
export const OTHER_MODEL = 'other';

/**
 * Folds every pending usage record into the user, model and day aggregates and the cluster metrics. Workers call it
 * every second; readers call it before they read, so a report right after a run already counts the run.
 */
export async function foldUsage(redis: RedisClient, keys: RedisKeys): Promise<number> {
  const counts = await Promise.all(everyTag(keys).map(async (k) => {
    let folded = 0;
    for (;;) {
      const n = (await foldScript.run(redis, [k.pendingUsage, k.metrics], [FOLD_BATCH, Date.now(), MAX_MODELS, k.prefix])) as number;
      folded += n;
      if (n < FOLD_BATCH) return folded;
    }
  }));
  return counts.reduce((a, b) => a + b, 0);
}
