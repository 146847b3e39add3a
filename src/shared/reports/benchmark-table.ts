import type { BenchmarkReport, LocomoReport, LongMemEvalReport, Share } from './benchmark-report.js';

/**
 * A benchmark report as a table, in its paper's shape, for the CLI (text, CSV), the dashboard and comparisons:
 * LongMemEval's accuracies to 4 places, as print_qa_metrics.py prints them; LoCoMo's F1, B1 and J in percent to 2
 * places, as the Mem0 paper's table gives them. Each figure with the number of questions it is of.
 */
export interface BenchmarkTable {
  title: string;
  headers: string[];
  rows: string[][];
  /** What the figures leave out, in a line (or none). */
  note: string | undefined;
}

const fixed4 = (s: Share | number | null) => {
  const v = typeof s === 'number' || s === null ? s : s.mean;
  return v === null ? '-' : v.toFixed(4);
};
const percent = (s: Share) => (s.mean === null ? '-' : (s.mean * 100).toFixed(2));
const withCount = (text: string, s: Share) => (s.count ? `${text} (${s.count})` : text);

function longMemEvalTable(r: LongMemEvalReport): BenchmarkTable {
  return {
    title: `LongMemEval, judged by ${r.judges.join(', ') || 'no judge'}`,
    headers: ['question type', 'questions', 'accuracy'],
    rows: [
      ...r.types.map((t) => [t.type, String(t.count), fixed4(t)]),
      ['task-averaged', '', fixed4(r.taskAveraged)],
      ['overall', String(r.overall.count), fixed4(r.overall)],
      ['abstention', String(r.abstention.count), fixed4(r.abstention)],
    ],
    note: left(r),
  };
}

function locomoTable(r: LocomoReport): BenchmarkTable {
  const row = (label: string, f: Record<'f1' | 'b1' | 'j', Share>) => [
    label,
    String(f.f1.count),
    percent(f.f1),
    percent(f.b1),
    withCount(percent(f.j), f.j),
  ];
  return {
    title: `LoCoMo: F1 (LoCoMo's), B1 and J (Mem0's${r.judges.length ? `, judged by ${r.judges.join(', ')}` : ''})`,
    headers: ['category', 'questions', 'F1', 'B1', 'J (judged)'],
    rows: [...r.categories.map((c) => row(`${c.category} ${c.name}`, c)), row('overall', r.overall)],
    note: left(r),
  };
}

const left = (r: BenchmarkReport) =>
  r.unanswered || r.ungraded
    ? `${r.questions} questions: ${r.unanswered} without an answer${r.benchmark === 'locomo' ? ' (F1 0, as LoCoMo counts them)' : ''}, ${r.ungraded} ungraded`
    : undefined;

export const benchmarkTable = (r: BenchmarkReport): BenchmarkTable =>
  r.benchmark === 'longmemeval' ? longMemEvalTable(r) : locomoTable(r);

/** Two runs' tables side by side (the same benchmark): each figure of A, of B, and B - A. */
export function comparedTables(a: BenchmarkReport, b: BenchmarkReport): BenchmarkTable {
  const ta = benchmarkTable(a);
  const tb = benchmarkTable(b);
  const byLabel = new Map(tb.rows.map((r) => [r[0]!, r]));
  const labels = [...new Set([...ta.rows.map((r) => r[0]!), ...tb.rows.map((r) => r[0]!)])];
  const figures = ta.headers.slice(1);
  const delta = (x: string | undefined, y: string | undefined) => {
    const [p, q] = [Number.parseFloat(x ?? ''), Number.parseFloat(y ?? '')];
    return Number.isFinite(p) && Number.isFinite(q)
      ? `${q - p >= 0 ? '+' : ''}${(q - p).toFixed(a.benchmark === 'longmemeval' ? 4 : 2)}`
      : '-';
  };
  return {
    title: `${ta.title} | ${tb.title}`,
    headers: [ta.headers[0]!, ...figures.flatMap((f) => [`${f} A`, `${f} B`, 'change'])],
    rows: labels.map((label) => {
      const ra = ta.rows.find((r) => r[0] === label);
      const rb = byLabel.get(label);
      return [
        label,
        ...figures.flatMap((_, i) => [ra?.[i + 1] ?? '-', rb?.[i + 1] ?? '-', delta(ra?.[i + 1], rb?.[i + 1])]),
      ];
    }),
    note: [ta.note && `A: ${ta.note}`, tb.note && `B: ${tb.note}`].filter(Boolean).join('; ') || undefined,
  };
}
