import { benchmarkOf, predictionOf, replyText } from '../shared/expectations.js';
import type { BenchmarkRun } from '../shared/reports/benchmark-report.js';
import { type BenchmarkTable, benchmarkTable, comparedTables } from '../shared/reports/benchmark-table.js';
import type { StoredRequest } from '../shared/request-record.js';
import { html, query, type Html, table } from './html.js';

/**
 * A memory benchmark run on the dashboard: its paper's table (as `chatq eval` prints it), and its questions, each with
 * its reference, the reply (as its scorers read it) and each grader's verdict; two runs' tables side by side.
 */

export const QUESTIONS_PER_PAGE = 50;
const SHOWN = 200;
const clip = (s: string) => (s.length > SHOWN ? `${s.slice(0, SHOWN)}…` : s);

function figures(t: BenchmarkTable, id: string): Html {
  return html`<h2>${t.title}</h2>
<div data-benchmark="${id}">${table(t.headers, t.rows)}</div>
${t.note ? html`<p class="note">${t.note}</p>` : ''}`;
}

/** What each grader said of a question: the judge's verdict (with its model), and the scores without a call. */
function verdicts(r: StoredRequest): string {
  const g = r.grade;
  if (!g) return r.status === 'succeeded' ? '-' : r.status;
  const judge = g.judge
    ? `${g.judge.pass === null ? 'ungraded' : g.judge.pass ? 'correct' : 'wrong'} (${g.judge.model})`
    : g.judging
      ? 'judging'
      : undefined;
  const scores = g.scores
    ? `F1 ${g.scores.f1.toFixed(3)}${g.scores.b1 === null ? '' : ` · B1 ${g.scores.b1.toFixed(3)}`}`
    : undefined;
  return [judge, scores].filter(Boolean).join(' · ') || '-';
}

function questionRow(r: StoredRequest): string[] {
  const ref = benchmarkOf(r.expect)?.ref ?? {};
  const reply = replyText(r.response);
  const reference = String(ref.answer ?? ref.adversarial_answer ?? '');
  return [
    r.customId,
    r.tags.join(', '),
    clip(String(ref.question ?? '')),
    clip(reference),
    reply === null ? (r.error ? `${r.error.code}: ${r.error.message}` : '') : clip(predictionOf(r.expect, reply)),
    verdicts(r),
  ];
}

/** A benchmark run's section of its batch page: the table, and one page of its questions. */
export function benchmarkSection(batchId: string, run: BenchmarkRun, questions: StoredRequest[], page: number): Html {
  const pages = Math.max(1, Math.ceil(run.questions.length / QUESTIONS_PER_PAGE));
  const link = (n: number) => `/batches/${batchId}${query({ qpage: n || undefined })}#questions`;
  return html`${figures(benchmarkTable(run.report), batchId)}
<p class="actions"><a class="button" href="/batches/${batchId}/benchmark-answers" download>answers for the official scorer (${run.report.benchmark})</a></p>
<h2 id="questions">Questions</h2>
${table(['custom_id', 'type', 'question', 'reference', 'reply', 'verdicts'], questions.map(questionRow))}
<p class="pager">${page > 0 ? html`<a href="${link(page - 1)}">← previous</a>` : ''} questions page ${page + 1} of ${pages} ${page + 1 < pages ? html`<a href="${link(page + 1)}">next →</a>` : ''}</p>`;
}

/** Two benchmark runs of one benchmark, their tables side by side (A: the baseline). */
export const benchmarkComparison = (a: BenchmarkRun, b: BenchmarkRun) =>
  figures(comparedTables(a.report, b.report), 'compare');
