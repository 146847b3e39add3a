import { formatCount } from '../shared/display-format.js';
import type { Comparison, PassCounts } from '../shared/reports/eval-report.js';
import { formatUsd } from '../shared/usage/pricing.js';
import { gradingCost, repeatCost } from '../shared/reports/usage-report.js';
import type { UsageRow } from '../shared/batches/read-store.js';
import type { ScheduleSpec } from '../shared/files/schedules.js';
import type { BatchProgress } from './batch-progress.js';
import { pct } from './batch-pages.js';
import { html, table, type Html } from './html.js';
import { barChart, lineChart } from './svg-charts.js';

const usd = (nano: number) => formatUsd(nano);
/** Dollars (a chart's values) as formatUsd shows them: enough digits for tiny costs. */
const usdOf = (v: number) => formatUsd(Math.round(v * 1e9));

function usageTable(label: string, rows: UsageRow[]): Html {
  return table(
    [
      label,
      'calls',
      'succeeded',
      'failed',
      'prompt tok',
      'cached',
      'completion tok',
      'total tok',
      'cost',
      'unpriced',
      'repeat cost',
      'grading cost',
    ],
    rows.map((r) => [
      r.key,
      formatCount(r.requests),
      formatCount(r.succeeded),
      formatCount(r.failed),
      formatCount(r.prompt_tokens),
      formatCount(r.cached_tokens),
      formatCount(r.completion_tokens),
      formatCount(r.total_tokens),
      usd(r.cost_nano),
      formatCount(r.unpriced),
      repeatCost(r),
      gradingCost(r),
    ]),
  );
}

/** Costs by day and by model: the same aggregates as GET /v1/usage. */
export function costsPage(byDay: UsageRow[], byModel: UsageRow[], range: { from?: string; to?: string }): Html {
  const total = byDay.reduce((a, r) => a + r.cost_nano, 0);
  return html`<form class="filters" method="get" action="/costs">
<label>From <input name="from" value="${range.from ?? ''}" placeholder="YYYY-MM-DD" maxlength="10"></label>
<label>To <input name="to" value="${range.to ?? ''}" placeholder="YYYY-MM-DD" maxlength="10"></label>
<button type="submit">Show</button>
</form>
<p>Total in range: <strong data-field="total-cost">${usd(total)}</strong> over ${formatCount(byDay.reduce((a, r) => a + r.requests, 0))} calls.</p>
<h2>By day (UTC)</h2>
${barChart(
  'Cost by day',
  byDay.map((r) => ({ label: r.key.slice(5), value: r.cost_nano / 1e9 })),
  usdOf,
)}
${usageTable('day', byDay)}
<h2>By model</h2>
${barChart(
  'Cost by model',
  byModel.map((r) => ({ label: r.key, value: r.cost_nano / 1e9 })),
  usdOf,
)}
${usageTable('model', byModel)}`;
}

export function evalsPage(schedules: (ScheduleSpec & { next: number | null })[]): Html {
  return html`<p>Scheduled evaluation suites; each firing is a batch. Open one to see its pass rate and cost run over run, and compare two runs.</p>
${table(
  ['schedule', 'when', 'suite', 'models', 'min pass', 'next run (UTC)'],
  schedules.map((s) => [
    html`<a href="/evals/${s.name}">${s.name}</a>`,
    s.cron ? `cron ${s.cron} (${s.tz})` : `every ${formatCount(s.every_ms ?? 0)} ms`,
    s.source,
    s.models.length ? s.models.join(', ') : 'as in the suite',
    s.min_pass === undefined ? '-' : pct(s.min_pass),
    s.next ? new Date(s.next).toISOString().slice(0, 19).replace('T', ' ') : '-',
  ]),
)}`;
}

export interface EvalRun {
  id: string;
  name: string;
  firedAt: string;
  progress: BatchProgress;
}

/** The latest runs of a schedule (oldest first) and, for each, its pass counts by tag. */
export interface TagTrend {
  runs: EvalRun[];
  byTag: Record<string, PassCounts>[];
}

const runLabel = (r: EvalRun) => r.firedAt.slice(5, 16).replace('T', ' ');

/** A row per tag, a column per run: its pass rate there, with its counts. */
function tagTrendTable(trend: TagTrend): Html {
  const tags = [...new Set(trend.byTag.flatMap((t) => Object.keys(t)))].sort();
  if (tags.length === 0) return html`<p class="empty">No tagged request graded in these runs.</p>`;
  return table(
    ['tag', ...trend.runs.map(runLabel)],
    tags.map((tag) => [
      tag,
      ...trend.byTag.map((t) => {
        const c = t[tag];
        return c && c.passRate !== null ? `${pct(c.passRate)} (${c.passed}/${c.passed + c.failed})` : '-';
      }),
    ]),
  );
}

/** One schedule's runs, oldest first: pass rate and cost as trends, by tag too, and a form to compare two runs. */
export function scheduleRunsPage(name: string, runs: EvalRun[], trend: TagTrend): Html {
  const graded = runs.filter((r) => r.progress.passRate !== null);
  const pick = (field: string, selected: EvalRun | undefined) =>
    html`<select name="${field}">${runs.map((r) => html`<option value="${r.id}"${selected === r ? html` selected` : ''}>${r.name}</option>`)}</select>`;
  return html`<h2>Pass rate per run</h2>
${
  graded.length
    ? lineChart(
        `Pass rate of ${name}`,
        graded.map((r) => ({ label: runLabel(r), value: r.progress.passRate! })),
        (v) => `${(v * 100).toFixed(0)}%`,
        1,
      )
    : html`<p class="empty">No graded run yet.</p>`
}
<h2>Pass rate by tag</h2>
${tagTrendTable(trend)}
<h2>Cost per run</h2>
${barChart(
  `Cost of ${name}`,
  runs.map((r) => ({ label: runLabel(r), value: r.progress.costUsd })),
  usdOf,
)}
<h2>Runs</h2>
${table(
  ['run', 'batch', 'status', 'requests', 'pass rate', 'cost'],
  [...runs]
    .reverse()
    .map((r) => [
      r.name,
      html`<a href="/batches/${r.id}">${r.id}</a>`,
      r.progress.status,
      formatCount(r.progress.total),
      pct(r.progress.passRate),
      usdOf(r.progress.costUsd),
    ]),
)}
${
  runs.length >= 2
    ? html`<form class="filters" method="get" action="/compare">
<label>Baseline ${pick('a', runs.at(-2))}</label>
<label>New run ${pick('b', runs.at(-1))}</label>
<button type="submit">Compare</button>
</form>`
    : ''
}`;
}

export function comparePage(a: string, b: string, c: Comparison): Html {
  const changed = c.requests.filter((r) => r.change !== 'same');
  const figures = (f: Comparison['a']) => [
    pct(f.passRate),
    formatCount(f.tokens),
    usd(f.costNano),
    f.p50LatencyMs === null ? '-' : `${formatCount(f.p50LatencyMs)} ms`,
    f.p95LatencyMs === null ? '-' : `${formatCount(f.p95LatencyMs)} ms`,
  ];
  return html`${table(
    ['run', 'batch', 'pass rate', 'tokens', 'cost', 'p50 latency', 'p95 latency'],
    [
      ['baseline', html`<a href="/batches/${a}">${a}</a>`, ...figures(c.a)],
      ['new', html`<a href="/batches/${b}">${b}</a>`, ...figures(c.b)],
    ],
  )}
<p><strong class="grade-fail">${formatCount(c.regressed)} regressed</strong> · <strong class="grade-pass">${formatCount(c.fixed)} fixed</strong> · ${formatCount(c.requests.length - changed.length)} unchanged</p>
${table(
  ['custom_id', 'change', 'baseline', 'new', 'tokens (baseline → new)'],
  changed.map((r) => [r.customId, r.change, r.a, r.b, `${r.tokensA ?? '-'} → ${r.tokensB ?? '-'}`]),
)}
<p>The same from the CLI: <code>chatq compare ${a} ${b}</code></p>`;
}
