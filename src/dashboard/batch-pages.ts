import type { ApiDeps } from '../http/api-deps.js';
import { formatCount } from '../shared/display-format.js';
import { replyText } from '../shared/expectations.js';
import { DEFAULT_PROJECT } from '../shared/keys.js';
import { formatUsd } from '../shared/usage/pricing.js';
import { batchRequestIds, getRequests } from '../shared/batches/read-store.js';
import type { StoredRequest } from '../shared/request-record.js';
import { batchEnded, type BatchRecord } from '../shared/batch-record.js';
import type { Scope } from '../shared/scope.js';
import { readBatchRecords, withProgress, type BatchProgress, type BatchRow } from './batch-progress.js';
import { html, query, raw, table, type Html } from './html.js';

/** Batches looked at for one filtered page at the most (newest first): filters stay bounded on a big Redis. */
const MAX_SCANNED = 5_000;
export const BATCHES_PER_PAGE = 25;
export const REQUESTS_PER_PAGE = 50;
const REPLY_SHOWN = 300;

export const pct = (v: number | null) => (v === null ? '-' : `${(v * 100).toFixed(1)}%`);
const when = (ms: number | null) => (ms === null ? '-' : new Date(ms).toISOString().replace('T', ' ').slice(0, 19));
const clip = (s: string | null, n = REPLY_SHOWN) => (s === null ? '' : s.length > n ? `${s.slice(0, n)}…` : s);

/** The batch index the scope reads: every batch (admins) or its project's. */
export const batchIndex = (deps: Pick<ApiDeps, 'keys'>, scope: Scope) =>
  scope.all ? deps.keys.batches : deps.keys.projectBatches(scope.project);

/**
 * The scope's batches, newest first, that pass `keep`: records read in slices of the index until a page is full,
 * the index ends or MAX_SCANNED were looked at; usage read for the page alone. Returns the page and whether more
 * matched past it.
 */
export async function findBatches(
  deps: Pick<ApiDeps, 'redis' | 'keys'>,
  scope: Scope,
  keep: (b: BatchRecord) => boolean,
  skip: number,
  limit: number,
): Promise<{ rows: BatchRow[]; more: boolean }> {
  const found: BatchRecord[] = [];
  let matched = 0;
  let more = false;
  scan: for (let from = 0; from < MAX_SCANNED; from += 200) {
    const ids = await deps.redis.zrevrange(batchIndex(deps, scope), from, from + 199);
    for (const batch of await readBatchRecords(deps.redis, deps.keys, ids)) {
      if (!keep(batch)) continue;
      matched += 1;
      more = matched > skip + limit;
      if (more) break scan;
      if (matched > skip) found.push(batch);
    }
    if (ids.length < 200) break;
  }
  return { rows: await withProgress(deps.redis, deps.keys, found), more };
}

/** The live parts of a batch row: the script updates the elements marked data-field from server-sent events. */
export function progressCells(p: BatchProgress): Html[] {
  return [
    html`<span data-field="status" class="status status-${p.status}">${p.status}</span>`,
    html`<progress data-field="bar" value="${p.done}" max="${Math.max(1, p.total)}"></progress> <span data-field="done">${formatCount(p.done)}</span>/<span data-field="total">${formatCount(p.total)}</span>`,
    html`<span data-field="succeeded">${formatCount(p.succeeded)}</span>`,
    html`<span data-field="notSucceeded">${formatCount(p.notSucceeded)}</span>`,
    html`<span data-field="cost">${formatUsd(Math.round(p.costUsd * 1e9))}</span>`,
    html`<span data-field="pass">${pct(p.passRate)}</span>`,
  ];
}

const STATUSES = ['validating', 'in_progress', 'cancelling', 'expiring', 'completed', 'cancelled', 'failed', 'expired'];

export function batchesPage(
  rows: BatchRow[],
  filter: { status?: string; q?: string; page: number },
  more: boolean,
): Html {
  const link = (page: number) => `/${query({ status: filter.status, q: filter.q, page: page || undefined })}`;
  return html`<form class="filters" method="get" action="/">
<label>Status <select name="status"><option value="">any</option>${STATUSES.map((s) => html`<option${raw(s === filter.status ? ' selected' : '')}>${s}</option>`)}</select></label>
<label>Name <input name="q" value="${filter.q ?? ''}" maxlength="200" placeholder="part of the name"></label>
<button type="submit">Filter</button>
</form>
${table(
  ['batch', 'name', 'status', 'progress', 'succeeded', 'not succeeded', 'cost', 'pass rate', 'created (UTC)'],
  rows.map(({ batch: b, progress: p }) => {
    const [status, bar, ok, notOk, cost, pass] = progressCells(p);
    return [
      html`<a href="/batches/${b.id}">${b.id}</a>`,
      b.name,
      status,
      bar,
      ok,
      notOk,
      cost,
      pass,
      when(b.createdAt),
    ];
  }),
  (i) => html` data-batch="${rows[i]!.batch.id}"`,
)}
<p class="pager">${filter.page > 0 ? html`<a href="${link(filter.page - 1)}">← newer</a>` : ''} ${more ? html`<a href="${link(filter.page + 1)}">older →</a>` : ''}</p>`;
}

function requestRow(r: StoredRequest, project: string): Html[] {
  const userLink = `/users/${r.userid}${project === DEFAULT_PROJECT ? '' : query({ project })}`;
  return [
    html`<span title="line ${r.line}">${r.customId}</span>`,
    html`<a href="${userLink}">${r.userid.slice(0, 8)}…</a>`,
    html`<span class="status status-${r.status}">${r.status}</span>`,
    html`<span class="reply">${clip(replyText(r.response) ?? (r.error ? `${r.error.code}: ${r.error.message}` : ''))}</span>`,
    r.latencyMs === null ? '-' : html`${formatCount(r.latencyMs)} ms`,
    String(r.attempts),
    r.grade
      ? r.grade.scored
        ? 'scored'
        : html`<span class="grade-${r.grade.pass ? 'pass' : 'fail'}">${r.grade.pass ? 'pass' : 'fail'}</span>`
      : '-',
    r.costNano === null ? '-' : formatUsd(r.costNano),
  ].map((c) => (typeof c === 'string' ? html`${c}` : c));
}

export function batchPage(
  b: BatchRecord,
  p: BatchProgress,
  usage: { prompt_tokens: number; completion_tokens: number; cached_tokens: number; total_tokens: number },
  requests: StoredRequest[],
  page: number,
  pages: number,
  benchmark: Html | undefined,
): Html {
  const [status, bar, ok, notOk, cost, pass] = progressCells(p);
  const failures = Object.entries(b.errors).sort((x, y) => y[1] - x[1]);
  if (b.skipped) failures.push(['skipped (an earlier turn failed)', b.skipped]);
  if (b.expired) failures.push(['batch_expired', b.expired]);
  if (b.cancelled) failures.push(['cancelled', b.cancelled]);
  const ended = batchEnded(b.status);
  const link = (n: number) => `/batches/${b.id}${query({ page: n || undefined })}`;
  return html`<div data-batch="${b.id}" class="summary">
${table(['status', 'progress', 'succeeded', 'not succeeded', 'cost', 'pass rate'], [[status, bar, ok, notOk, cost, pass]])}
</div>
<dl class="facts">
<dt>name</dt><dd>${b.name}</dd>
<dt>project</dt><dd>${b.project}</dd>
<dt>input</dt><dd>${b.input}</dd>
<dt>created</dt><dd>${when(b.createdAt)}</dd>
<dt>ended</dt><dd>${when(b.completedAt ?? b.cancelledAt ?? b.failedAt ?? b.expiredAt)}</dd>
<dt>completion window</dt><dd>${b.completionWindow ?? 'none'}${b.expiresAt ? html` (until ${when(b.expiresAt)})` : ''}</dd>
<dt>tokens</dt><dd>${formatCount(usage.prompt_tokens)} prompt (${formatCount(usage.cached_tokens)} cached) · ${formatCount(usage.completion_tokens)} completion · <span data-field="tokens">${formatCount(usage.total_tokens)}</span> total</dd>
<dt>budget</dt><dd>${b.maxCostNano === null ? 'none' : formatUsd(b.maxCostNano)}</dd>
<dt>bad lines</dt><dd>${formatCount(b.rejectedLines)}</dd>
</dl>
<p class="actions">
${b.succeeded > 0 ? html`<a class="button" href="/batches/${b.id}/output.jsonl" download>output file</a>` : ''}
${p.notSucceeded > 0 ? html`<a class="button" href="/batches/${b.id}/errors.jsonl" download>error file</a>` : ''}
${ended ? '' : html`<form method="post" action="/batches/${b.id}/cancel" class="inline"><button type="submit" class="danger">Cancel batch</button></form>`}
</p>
${benchmark ?? ''}
<h2>Failures by reason</h2>
${table(
  ['reason', 'requests'],
  failures.map(([code, n]) => [code, formatCount(n)]),
)}
<h2>Requests</h2>
${table(
  ['custom_id', 'user', 'status', 'reply', 'latency', 'attempts', 'grade', 'cost'],
  requests.map((r) => requestRow(r, b.project)),
)}
<p class="pager">${page > 0 ? html`<a href="${link(page - 1)}">← previous</a>` : ''} page ${page + 1} of ${Math.max(1, pages)} ${page + 1 < pages ? html`<a href="${link(page + 1)}">next →</a>` : ''}</p>`;
}

/** One page of a batch's requests in input order. */
export async function batchRequestsPage(
  deps: Pick<ApiDeps, 'redis' | 'keys'>,
  batchId: string,
  page: number,
): Promise<{ requests: StoredRequest[]; pages: number }> {
  const { count, ids } = await batchRequestIds(
    deps.redis,
    deps.keys,
    batchId,
    page * REQUESTS_PER_PAGE,
    REQUESTS_PER_PAGE,
  );
  const requests = (await getRequests(deps.redis, deps.keys, ids)).filter((r) => r !== null);
  return { requests, pages: Math.ceil(count / REQUESTS_PER_PAGE) };
}

/** A user's requests in the order they were sent: what their memory was built from. */
export function userPage(
  userid: string,
  requests: StoredRequest[],
  page: number,
  more: boolean,
  project: string,
): Html {
  const link = (n: number) =>
    `/users/${userid}${query({ project: project === DEFAULT_PROJECT ? undefined : project, page: n || undefined })}`;
  const lastUserMessage = (r: StoredRequest) => {
    const messages = (r.body.messages ?? []) as { role?: string; content?: unknown }[];
    const last = [...messages].reverse().find((m) => m.role === 'user');
    return typeof last?.content === 'string' ? last.content : last ? JSON.stringify(last.content) : '';
  };
  return html`<p>Requests of user <code>${userid}</code>${project === DEFAULT_PROJECT ? '' : html` in project ${project}`}, oldest first: each call updated this user's memory before the next.</p>
${table(
  ['#', 'sent (UTC)', 'batch', 'custom_id', 'status', 'said', 'reply', 'latency'],
  requests.map((r, i) => [
    String(page * REQUESTS_PER_PAGE + i + 1),
    when(r.finishedAt ?? r.createdAt),
    html`<a href="/batches/${r.batch}">${r.batch}</a>`,
    r.customId,
    html`<span class="status status-${r.status}">${r.status}</span>`,
    clip(lastUserMessage(r)),
    clip(replyText(r.response) ?? (r.error ? `${r.error.code}: ${r.error.message}` : '')),
    r.latencyMs === null ? '-' : `${formatCount(r.latencyMs)} ms`,
  ]),
)}
<p class="pager">${page > 0 ? html`<a href="${link(page - 1)}">← earlier</a>` : ''} ${more ? html`<a href="${link(page + 1)}">later →</a>` : ''}</p>`;
}
