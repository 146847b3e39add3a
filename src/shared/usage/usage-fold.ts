import { LuaScript, type RedisClient } from '../redis/redis.js';
import { everyTag, USAGE_DIMENSIONS, type RedisKeys } from '../keys.js';

const foldScript = new LuaScript(new URL('./fold-usage.lua', import.meta.url));

/** Records folded per script call. */
const FOLD_BATCH = 2_000;
/** Distinct model names kept per project; usage of others is counted as "other". */
export const MAX_MODELS = 200;
export const OTHER_MODEL = 'other';

/** The aggregate and index keys a usage record names (fold-usage.lua declares them all). */
function keysOfRecord(k: RedisKeys, text: string): string[] {
  const r = JSON.parse(text) as { p: string; u: string; m: string; d: string; b: string };
  return [
    k.usage(r.p, 'user', r.u),
    k.usage(r.p, 'model', r.m),
    k.usage(r.p, 'day', r.d),
    k.usage(r.p, 'batch', r.b),
    k.usage(r.p, 'model', OTHER_MODEL),
    ...USAGE_DIMENSIONS.map((dim) => k.usageIndex(r.p, dim)),
  ];
}

/** Folds the records at the head of one tag's pending list: how many it folded. */
async function foldSome(redis: RedisClient, k: RedisKeys): Promise<{ folded: number; read: number }> {
  const texts = await redis.lrange(k.pendingUsage, 0, FOLD_BATCH - 1);
  if (texts.length === 0) return { folded: 0, read: 0 };
  const declared = new Set(texts.flatMap((text) => keysOfRecord(k, text)));
  const folded = (await foldScript.run(
    redis,
    [k.pendingUsage, k.metrics, ...declared],
    [texts.length, Date.now(), MAX_MODELS, k.prefix, OTHER_MODEL],
  )) as number;
  return { folded, read: texts.length };
}

/**
 * Folds every pending usage record into the user, model and day aggregates and the cluster metrics. Workers call it
 * every second; readers call it before they read, so a report right after a run already counts the run.
 */
export async function foldUsage(redis: RedisClient, keys: RedisKeys): Promise<number> {
  const counts = await Promise.all(
    everyTag(keys).map(async (k) => {
      let total = 0;
      // Another process folding the same records at once makes a pass fold none: read again, a few times at most.
      for (let idle = 0; idle < 3; ) {
        const { folded, read } = await foldSome(redis, k);
        total += folded;
        if (read < FOLD_BATCH && folded === read) return total;
        idle = folded === 0 ? idle + 1 : 0;
      }
      return total;
    }),
  );
  return counts.reduce((a, b) => a + b, 0);
}
