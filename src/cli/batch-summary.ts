import type { BenchmarkTable } from '../shared/reports/benchmark-table.js';
import { formatUsd } from '../shared/usage/pricing.js';
import type { UsageRow } from '../shared/batches/read-store.js';
import { batchEnded, type BatchRecord } from '../shared/batch-record.js';
import { formatCount } from '../shared/display-format.js';
import { renderTable } from './table.js';
import { gradingCost, repeatCost } from '../shared/reports/usage-report.js';

import type { EvalSummary, PassCounts } from '../shared/reports/eval-report.js';

/** The tables printed after a run and by `chatq status`: counts, tokens, cost, failures by reason. */
export function batchTable(rows: { batch: BatchRecord; usage: UsageRow }[]): string {
  return renderTable(
    [
      'batch',
      'input',
      'status',
      'requests',
      'succeeded',
      'failed',
      'skipped',
      'cancelled',
      'expired',
      'bad lines',
      'evals passed',
    ],
    rows.map(({ batch: b }) => [
      b.id,
      b.input,
      b.status,
      b.total,
      b.succeeded,
      b.failed,
      b.skipped,
      b.cancelled,
      b.expired,
      b.rejectedLines,
      b.evalPass + b.evalFail + b.evalUngraded
        ? `${b.evalPass}/${b.evalPass + b.evalFail}${b.evalUngraded ? ` (${b.evalUngraded} ungraded)` : ''}`
        : '-',
    ]),
  );
}

export function usageTable(rows: { label: string; usage: UsageRow }[]): string {
  return renderTable(
    [
      '',
      'calls',
      'prompt tok',
      'cached',
      'completion tok',
      'reasoning',
      'total tok',
      'cost',
      'unpriced',
      'repeat cost',
      'grading cost',
    ],
    rows.map(({ label, usage: u }) => [
      label,
      formatCount(u.requests),
      formatCount(u.prompt_tokens),
      formatCount(u.cached_tokens),
      formatCount(u.completion_tokens),
      formatCount(u.reasoning_tokens),
      formatCount(u.total_tokens),
      formatUsd(u.cost_nano),
      formatCount(u.unpriced),
      repeatCost(u),
      gradingCost(u),
    ]),
  );
}

export function failuresTable(batches: BatchRecord[]): string | null {
  const byCode = new Map<string, number>();
  for (const b of batches)
    for (const [code, n] of Object.entries(b.errors)) byCode.set(code, (byCode.get(code) ?? 0) + n);
  const skipped = batches.reduce((a, b) => a + b.skipped, 0);
  if (skipped) byCode.set('skipped (earlier turn failed, on_failure "halt")', skipped);
  const expired = batches.reduce((a, b) => a + b.expired, 0);
  if (expired) byCode.set('batch_expired (not done within the completion window)', expired);
  if (byCode.size === 0) return null;
  return renderTable(
    ['failure reason', 'requests'],
    [...byCode].sort((a, b) => b[1] - a[1]).map(([c, n]) => [c, n]),
  );
}

export const isFinished = (b: BatchRecord) => batchEnded(b.status);

const countsRow = (label: string, c: PassCounts) => [
  label,
  c.passed + c.failed + c.ungraded,
  c.passed,
  c.failed,
  c.ungraded,
  pct(c.passRate),
];

/** Pass rates by tag (a benchmark's question types) and overall, as the papers report accuracy: with counts. */
/** A benchmark's table as text: its title, the table, and what its figures leave out. */
export const benchmarkText = (t: BenchmarkTable) =>
  [t.title, renderTable(t.headers, t.rows), ...(t.note ? [`note: ${t.note}`] : [])].join('\n');

export function tagTable(s: EvalSummary): string {
  const tags = Object.keys(s.byTag).sort();
  return renderTable(
    ['tag', 'graded', 'passed', 'failed', 'ungraded', 'pass rate'],
    [...tags.map((t) => countsRow(t, s.byTag[t]!)), countsRow('overall', s)],
  );
}

const pct = (r: number | null) => (r === null ? '-' : `${(r * 100).toFixed(1)}%`);
