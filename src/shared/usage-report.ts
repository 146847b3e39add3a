import type { Redis } from 'ioredis';
import { csvCell } from './batch-output.js';
import type { RedisKeys, UsageDimension } from './keys.js';
import { listUsage, readBatchRequests, toUsageRow, type UsageRow } from './read-store.js';

export interface UsageQuery {
  by: UsageDimension;
  /** Only this batch's requests (then any grouping and from/to work, computed from its requests). */
  batch?: string;
  /** Inclusive UTC days, YYYY-MM-DD. */
  from?: string;
  to?: string;
}

export class UsageQueryError extends Error {}

const DAY = /^\d{4}-\d{2}-\d{2}$/;
const inRange = (day: string, q: UsageQuery) => (!q.from || day >= q.from) && (!q.to || day <= q.to);

/**
 * Requests, tokens (prompt, cached, completion, reasoning) and cost, grouped by batch, user, model or UTC day:
 * read from the aggregates the workers keep, or (with `batch`) summed from that batch's requests.
 */
export async function usageReport(redis: Redis, keys: RedisKeys, q: UsageQuery): Promise<UsageRow[]> {
  for (const [name, v] of [['from', q.from], ['to', q.to]] as const) {
    if (v !== undefined && !DAY.test(v)) throw new UsageQueryError(`${name}: expected a UTC day like 2026-11-26, got "${v}"`);
  }
  if (!q.batch) {
    if ((q.from || q.to) && q.by !== 'day') throw new UsageQueryError('from/to select days: use them with group by day, or with a batch');
    return listUsage(redis, keys, q.by, q.by === 'day' ? (day) => inRange(day, q) : undefined);
  }
  const groups = new Map<string, UsageRow>();
  for await (const r of readBatchRequests(redis, keys, q.batch)) {
    if ((r.status !== 'succeeded' && r.status !== 'failed') || r.finishedAt === null) continue;
    const day = new Date(r.finishedAt).toISOString().slice(0, 10);
    if (!inRange(day, q)) continue;
    const key = { batch: r.batch, user: r.userid, model: r.model, day }[q.by];
    const row = groups.get(key) ?? toUsageRow(key, {});
    row.requests += 1;
    row[r.status] += 1;
    row.prompt_tokens += r.usage.prompt_tokens;
    row.cached_tokens += r.usage.cached_tokens;
    row.completion_tokens += r.usage.completion_tokens;
    row.reasoning_tokens += r.usage.reasoning_tokens;
    row.total_tokens += r.usage.total_tokens;
    if (r.costNano === null) row.unpriced += 1;
    else row.cost_nano += r.costNano;
    groups.set(key, row);
  }
  return [...groups.values()].sort((a, b) => a.key.localeCompare(b.key));
}

export const USAGE_CSV_COLUMNS = ['requests', 'succeeded', 'failed', 'prompt_tokens', 'cached_tokens', 'completion_tokens', 'reasoning_tokens', 'total_tokens', 'cost_usd', 'unpriced'] as const;

/** Usage rows as JSON-friendly objects: cost in USD (exact to the nano-dollar) next to the integer nano-USD. */
export const usageJson = (rows: UsageRow[], by: UsageDimension) =>
  rows.map((r) => ({ [by]: r.key, ...r, key: undefined, cost_usd: r.cost_nano / 1e9 }));

export function usageCsv(rows: UsageRow[], by: UsageDimension): string {
  const lines = [[by, ...USAGE_CSV_COLUMNS].join(',')];
  for (const r of rows) {
    lines.push([r.key, r.requests, r.succeeded, r.failed, r.prompt_tokens, r.cached_tokens, r.completion_tokens, r.reasoning_tokens, r.total_tokens, (r.cost_nano / 1e9).toFixed(9), r.unpriced].map(csvCell).join(','));
  }
  return `${lines.join('\n')}\n`;
}
