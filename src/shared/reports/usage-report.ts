import type { RedisClient } from '../redis/redis.js';
import { csvCell, TOKEN_CSV_COLUMNS } from '../batches/batch-output.js';
import { isBatchId } from '../ids.js';
import type { RedisKeys, UsageDimension } from '../keys.js';
import { addUsage, getBatch, listUsage, readBatchRequests, toUsageRow, type UsageRow } from '../batches/read-store.js';
import { sees, type Scope } from '../scope.js';
import { formatCount } from '../display-format.js';
import { formatUsd } from '../usage/pricing.js';

/** The report's groupings: the stored dimensions, and months (days past the retention are kept per month). */
export type ReportDimension = UsageDimension | 'month';
export const REPORT_DIMENSIONS: readonly ReportDimension[] = ['batch', 'user', 'model', 'day', 'month'];

export interface UsageQuery {
  by: ReportDimension;
  /** Only this batch's requests (then any grouping and from/to work, computed from its requests). */
  batch?: string;
  /** Inclusive UTC days, YYYY-MM-DD. */
  from?: string;
  to?: string;
}

export class UsageQueryError extends Error {}
/** The batch is not one the scope may see (answered as not found, so existence does not leak). */
export class UsageNotFound extends Error {}

const DAY = /^\d{4}-\d{2}-\d{2}$/;
const inRange = (day: string, q: UsageQuery) => (!q.from || day >= q.from) && (!q.to || day <= q.to);

/** Months: those rolled up, plus the days still kept, summed per month. */
async function byMonth(redis: RedisClient, keys: RedisKeys, scope: Scope): Promise<UsageRow[]> {
  const months = new Map<string, UsageRow>();
  const add = (month: string, row: UsageRow) =>
    months.set(month, addUsage(months.get(month) ?? toUsageRow(month, {}), row));
  for (const r of await listUsage(redis, keys, scope, 'month')) add(r.key, r);
  for (const r of await listUsage(redis, keys, scope, 'day')) add(r.key.slice(0, 7), r);
  return [...months.values()].sort((a, b) => a.key.localeCompare(b.key));
}

/**
 * Requests, tokens (prompt, cached, completion, reasoning) and cost, grouped by batch, user, model, UTC day or month,
 * within what the scope may see: read from the aggregates the workers keep, or (with `batch`) summed from that
 * batch's requests.
 */
export async function usageReport(
  redis: RedisClient,
  keys: RedisKeys,
  scope: Scope,
  q: UsageQuery,
): Promise<UsageRow[]> {
  for (const [name, v] of [
    ['from', q.from],
    ['to', q.to],
  ] as const) {
    if (v !== undefined && !DAY.test(v))
      throw new UsageQueryError(`${name}: expected a UTC day like 2026-11-26, got "${v}"`);
  }
  if (!q.batch) {
    if ((q.from || q.to) && q.by !== 'day')
      throw new UsageQueryError('from/to select days: use them with group by day, or with a batch');
    if (q.by === 'month') return byMonth(redis, keys, scope);
    return listUsage(redis, keys, scope, q.by, q.by === 'day' ? (day) => inRange(day, q) : undefined);
  }
  // Only a batch id is read as one (any other key's name would be read as a batch record).
  const batch = isBatchId(q.batch) ? await getBatch(redis, keys, q.batch) : null;
  if (!batch || !sees(scope, batch.project)) throw new UsageNotFound(`No batch ${q.batch}.`);
  const groups = new Map<string, UsageRow>();
  for await (const r of readBatchRequests(redis, keys, q.batch)) {
    if ((r.status !== 'succeeded' && r.status !== 'failed') || r.finishedAt === null) continue;
    const day = new Date(r.finishedAt).toISOString().slice(0, 10);
    if (!inRange(day, q)) continue;
    const key = { batch: r.batch, user: r.userid, model: r.model, day, month: day.slice(0, 7) }[q.by];
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

export const USAGE_CSV_COLUMNS = [
  'requests',
  'succeeded',
  'failed',
  ...TOKEN_CSV_COLUMNS,
  'unpriced',
  'repeat_calls',
  'repeat_cost_usd',
  'grading_calls',
  'grading_cost_usd',
] as const;

/** Usage rows as JSON-friendly objects: cost in USD (exact to the nano-dollar) next to the integer nano-USD. */
export const usageJson = (rows: UsageRow[], by: ReportDimension) =>
  rows.map((r) => ({
    [by]: r.key,
    ...r,
    key: undefined,
    cost_usd: r.cost_nano / 1e9,
    repeat_cost_usd: r.repeat_cost_nano / 1e9,
    grading_cost_usd: r.grading_cost_nano / 1e9,
  }));

/** Repeat spend (calls answered again for requests counted already), in the cost: its cost and calls, or "-". */
export const repeatCost = (u: UsageRow) =>
  u.repeat_calls ? `${formatUsd(u.repeat_cost_nano)} (${formatCount(u.repeat_calls)})` : '-';

/** Grading spend (judge calls), in the cost: its cost and calls, or "-". */
export const gradingCost = (u: UsageRow) =>
  u.grading_calls ? `${formatUsd(u.grading_cost_nano)} (${formatCount(u.grading_calls)})` : '-';

export function usageCsv(rows: UsageRow[], by: ReportDimension): string {
  const lines = [[by, ...USAGE_CSV_COLUMNS].join(',')];
  for (const r of rows) {
    lines.push(
      [
        r.key,
        r.requests,
        r.succeeded,
        r.failed,
        r.prompt_tokens,
        r.cached_tokens,
        r.completion_tokens,
        r.reasoning_tokens,
        r.total_tokens,
        (r.cost_nano / 1e9).toFixed(9),
        r.unpriced,
        r.repeat_calls,
        (r.repeat_cost_nano / 1e9).toFixed(9),
        r.grading_calls,
        (r.grading_cost_nano / 1e9).toFixed(9),
      ]
        .map(csvCell)
        .join(','),
    );
  }
  return `${lines.join('\n')}\n`;
}
