import type { RedisClient } from '../redis/redis.js';
import { defineScript } from '../redis/script-contract.js';
import { everyTag, USAGE_DIMENSIONS, type RedisKeys } from '../keys.js';
import type { Usage } from './pricing.js';

/**
 * A finished request's usage on its way to the aggregates, as JSON text on the pending list: finish-request.lua pushes
 * it with the result, fold-usage.lua folds it into the user, model, day and batch aggregates (it names them by
 * project and names) and the cluster metrics.
 */
export interface UsageRecord {
  project: string;
  /** "" for a grading's (it belongs to no user). */
  userid: string;
  model: string;
  /** The UTC day (YYYY-MM-DD). */
  day: string;
  batch: string;
  status: string;
  /** Its token counts by name (those above 0). */
  tokens: Partial<Usage>;
  /** nano-USD; -1 when its model has no price (counted as unpriced). */
  cost_nano: number;
  /** Its latency's bucket ("" when it made no call) and its latency. */
  latency_bucket: string;
  latency_ms: number;
  /** A failure's reason, counted in the metrics as "failed:<reason>" (absent when it succeeded). */
  reason?: string;
  /**
   * A grading's (expect.judge): the judge calls it paid for (re-asks included; 0 for a grading never sent). Its tokens
   * and cost count, as grading_calls and grading_cost_nano too, not as a request, and for no user.
   */
  grading_calls?: number;
  /**
   * Set by finish-request.lua on repeat spend (another call of a request counted already): its tokens and cost count,
   * as repeat_calls and repeat_cost_nano too, but not as a request.
   */
  repeat?: true;
}

const foldScript = defineScript<
  {
    /** The most records to fold. */
    most: number;
    now: number;
    /** The most distinct model names per project (past it: other_model's). */
    max_models: number;
    prefix: string;
    /** The model name the others are counted under. */
    other_model: string;
  },
  { folded: number }
>()({
  file: new URL('./fold-usage.lua', import.meta.url),
  // The pending usage records (a list), the cluster-wide metrics hash, and every aggregate and index key that the
  // records at the head of the list name.
  keys: ['pending', 'metrics'],
  rest: 'declared',
  args: { most: 'whole', now: 'whole', max_models: 'whole', prefix: 'string', other_model: 'string' },
});

/** Records folded per script call. */
const FOLD_BATCH = 2_000;
/** Distinct model names kept per project; usage of others is counted as "other". */
export const MAX_MODELS = 200;
export const OTHER_MODEL = 'other';

/** The aggregate and index keys a usage record names (fold-usage.lua declares them all). */
function keysOfRecord(k: RedisKeys, text: string): string[] {
  const r = JSON.parse(text) as UsageRecord;
  return [
    k.usage(r.project, 'user', r.userid),
    k.usage(r.project, 'model', r.model),
    k.usage(r.project, 'day', r.day),
    k.usage(r.project, 'batch', r.batch),
    k.usage(r.project, 'model', OTHER_MODEL),
    ...USAGE_DIMENSIONS.map((dim) => k.usageIndex(r.project, dim)),
  ];
}

/** Folds the records at the head of one tag's pending list: how many it folded. */
async function foldSome(redis: RedisClient, k: RedisKeys): Promise<{ folded: number; read: number }> {
  const texts = await redis.lrange(k.pendingUsage, 0, FOLD_BATCH - 1);
  if (texts.length === 0) return { folded: 0, read: 0 };
  const declared = new Set(texts.flatMap((text) => keysOfRecord(k, text)));
  const { folded } = await foldScript.run(
    redis,
    { pending: k.pendingUsage, metrics: k.metrics, declared: [...declared] },
    { most: texts.length, now: Date.now(), max_models: MAX_MODELS, prefix: k.prefix, other_model: OTHER_MODEL },
  );
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
