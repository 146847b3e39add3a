import { benchmarkOf, type BenchmarkSpec, type Grade, judgeOf, predictionOf, replyText } from '../expectations.js';
import { LOCOMO_CATEGORIES, type LocomoCategory } from '../graders/locomo-f1.js';
import { LONGMEMEVAL_TYPES } from '../graders/longmemeval.js';
import { readBatchRequests } from '../batches/read-store.js';
import type { RedisKeys } from '../keys.js';
import type { RedisClient } from '../redis/redis.js';
import type { StoredRequest } from '../request-record.js';
import { type BatchRecord, batchEnded } from '../batch-record.js';

/**
 * A memory benchmark run's figures in its paper's shape, from its questions' grades:
 * - LongMemEval as its `print_qa_metrics.py` prints them: accuracy per question type with counts (its six, in its
 *   order), task-averaged (the mean of the types' accuracies), overall, and abstention accuracy; from the questions
 *   its judge labelled (as that script reads only labelled lines);
 * - LoCoMo per category (numbered as LoCoMo's code numbers them): F1 as LoCoMo's scripts average it (over every
 *   question asked, one without an answer counting 0, as analyze_aggr_acc counts it), BLEU-1 and the judge's J as
 *   the Mem0 paper reports them (not category 5, unless it was judged); overall F1 over every category, as LoCoMo's
 *   "Overall accuracy", and B1 and J over categories 1-4, as Mem0's.
 */

/** A share with what it is of: correct (or the sum of scores) over count; null when the count is 0. */
export interface Share {
  count: number;
  sum: number;
  mean: number | null;
}

const share = (): Share => ({ count: 0, sum: 0, mean: null });
function add(s: Share, value: number): void {
  s.count += 1;
  s.sum += value;
  s.mean = s.sum / s.count;
}

export interface LongMemEvalReport {
  benchmark: 'longmemeval';
  /** The judges whose labels these are (gpt-4o-2024-08-06 for the published figures). */
  judges: string[];
  /** Accuracy per question type, print_qa_metrics.py's six in its order, then any other type. */
  types: ({ type: string } & Share)[];
  /** The mean of the types' accuracies (those with questions). */
  taskAveraged: number | null;
  overall: Share;
  abstention: Share;
  /** Questions asked; of them, those without a reply or a label (counted in no figure). */
  questions: number;
  unanswered: number;
  ungraded: number;
}

export interface LocomoRow extends Record<'f1' | 'b1' | 'j', Share> {
  category: LocomoCategory;
  name: string;
}

export interface LocomoReport {
  benchmark: 'locomo';
  judges: string[];
  categories: LocomoRow[];
  /** F1 over every category (LoCoMo's overall); B1 and J over categories 1-4 (Mem0's; J over those judged). */
  overall: Record<'f1' | 'b1' | 'j', Share>;
  questions: number;
  unanswered: number;
  ungraded: number;
}

export type BenchmarkReport = LongMemEvalReport | LocomoReport;

/** A question of a benchmark run: its spec, reply (null: none) and grade. */
interface Question {
  spec: BenchmarkSpec;
  reply: string | null;
  grade: Grade | null;
}

const questionOf = (r: StoredRequest): Question | undefined => {
  const spec = benchmarkOf(r.expect);
  if (!spec) return undefined;
  return { spec, reply: r.status === 'succeeded' ? replyText(r.response) : null, grade: r.grade };
};

/** The judge's verdict of a question: pass or fail, or undefined (not judged, or ungraded). */
const verdictOf = (g: Grade | null) => (g?.judge && g.judge.pass !== null ? g.judge.pass : undefined);

function longMemEvalReport(questions: Question[]): LongMemEvalReport {
  const byType = new Map<string, Share>(LONGMEMEVAL_TYPES.map((t) => [t, share()]));
  const overall = share();
  const abstention = share();
  const judges = new Set<string>();
  let unanswered = 0;
  let ungraded = 0;
  for (const q of questions) {
    if (q.reply === null) unanswered += 1;
    const pass = verdictOf(q.grade);
    if (pass === undefined) {
      if (q.reply !== null) ungraded += 1;
      continue;
    }
    judges.add(q.grade!.judge!.model);
    const type = String(q.spec.ref.question_type);
    if (!byType.has(type)) byType.set(type, share());
    add(byType.get(type)!, pass ? 1 : 0);
    add(overall, pass ? 1 : 0);
    if (String(q.spec.ref.question_id).includes('_abs')) add(abstention, pass ? 1 : 0);
  }
  const types = [...byType].map(([type, s]) => ({ type, ...s }));
  const means = types.flatMap((t) => (t.mean === null ? [] : [t.mean]));
  return {
    benchmark: 'longmemeval',
    judges: [...judges].sort(),
    types,
    taskAveraged: means.length ? means.reduce((a, b) => a + b, 0) / means.length : null,
    overall,
    abstention,
    questions: questions.length,
    unanswered,
    ungraded,
  };
}

function locomoReport(questions: Question[]): LocomoReport {
  const rows = new Map<LocomoCategory, LocomoRow>(
    ([1, 2, 3, 4, 5] as const).map((c) => [
      c,
      { category: c, name: LOCOMO_CATEGORIES[c], f1: share(), b1: share(), j: share() },
    ]),
  );
  const overall = { f1: share(), b1: share(), j: share() };
  const judges = new Set<string>();
  let unanswered = 0;
  let ungraded = 0;
  for (const q of questions) {
    const category = q.spec.category as LocomoCategory;
    const row = rows.get(category)!;
    const scores = q.grade?.scores;
    if (q.reply === null || !scores) unanswered += 1;
    // An unanswered question counts 0 in F1, as LoCoMo's analyze_aggr_acc counts a question without its score.
    add(row.f1, scores?.f1 ?? 0);
    add(overall.f1, scores?.f1 ?? 0);
    if (category !== 5) {
      add(row.b1, scores?.b1 ?? 0);
      add(overall.b1, scores?.b1 ?? 0);
    }
    const pass = verdictOf(q.grade);
    if (pass !== undefined) {
      judges.add(q.grade!.judge!.model);
      add(row.j, pass ? 1 : 0);
      if (category !== 5) add(overall.j, pass ? 1 : 0);
    } else if (q.grade?.ungraded) ungraded += 1;
  }
  return {
    benchmark: 'locomo',
    judges: [...judges].sort(),
    categories: [...rows.values()].filter((r) => r.f1.count > 0),
    overall,
    questions: questions.length,
    unanswered,
    ungraded,
  };
}

/** A benchmark run's report, and its questions' request ids in input order (what the dashboard pages through). */
export interface BenchmarkRun {
  report: BenchmarkReport;
  questions: string[];
}

/** The run of a batch's requests, or undefined when none is a benchmark question. */
async function runOf(requests: AsyncIterable<StoredRequest>): Promise<BenchmarkRun | undefined> {
  const questions: Question[] = [];
  const ids: string[] = [];
  for await (const r of requests) {
    const q = questionOf(r);
    if (!q) continue;
    questions.push(q);
    ids.push(r.id);
  }
  if (questions.length === 0) return undefined;
  const report = questions[0]!.spec.name === 'longmemeval' ? longMemEvalReport(questions) : locomoReport(questions);
  return { report, questions: ids };
}

/**
 * A batch's benchmark run (undefined when it is none): read from its requests, and kept once the batch has ended and
 * been graded (it changes no more), for `ttlS`, so that a page or a poll does not read a 24,000-request run again.
 */
export async function benchmarkRun(
  redis: RedisClient,
  keys: RedisKeys,
  batch: BatchRecord,
  ttlS: number,
): Promise<BenchmarkRun | undefined> {
  if (!batch.benchmark) return undefined;
  const key = keys.batchBenchmark(batch.id);
  const kept = await redis.get(key);
  if (kept) return JSON.parse(kept) as BenchmarkRun;
  const run = await runOf(readBatchRequests(redis, keys, batch.id));
  if (run && batchEnded(batch.status) && batch.judging === 0) await redis.set(key, JSON.stringify(run), 'EX', ttlS);
  return run;
}

/** LoCoMo's CATEGORY_MAPPING, as its evaluate_qa.py writes category_name. */
const LOCOMO_NAMES: Record<LocomoCategory, string> = {
  1: 'Multi-hop',
  2: 'Temporal',
  3: 'Open-domain',
  4: 'Single-hop',
  5: 'Adversarial',
};

/** A LongMemEval question's line of evaluate_qa.py's output: its label when LongMemEval's judge gave one. */
function longMemEvalLine(r: StoredRequest, q: Question, prediction: string): string {
  const pass = judgeOf(r.expect)?.grader === 'longmemeval' ? verdictOf(q.grade) : undefined;
  return `${JSON.stringify({
    question_id: q.spec.ref.question_id,
    hypothesis: prediction,
    ...(pass !== undefined ? { autoeval_label: { model: q.grade!.judge!.model, label: pass } } : {}),
  })}\n`;
}

/** A LoCoMo QA as evaluate_qa.py writes it: as published, with the model's prediction, its F1 and its category name. */
function locomoQa(r: StoredRequest, q: Question, prediction: string): Record<string, unknown> {
  const { sample_id: _, ...qa } = q.spec.ref;
  return {
    ...qa,
    [`${r.model}_prediction`]: prediction,
    ...(q.grade?.scores ? { [`${r.model}_f1`]: q.grade.scores.f1 } : {}),
    category_name: LOCOMO_NAMES[q.spec.category as LocomoCategory],
  };
}

/**
 * A run's answers in the file its benchmark's official scorer reads (so that anyone can grade it again with the
 * paper's code): LongMemEval's evaluate_qa.py output lines ({question_id, hypothesis, autoeval_label: {model,
 * label}}), which print_qa_metrics.py reads; LoCoMo's task_eval/evaluate_qa.py output file ([{sample_id, qa: [...]}]),
 * which its evaluation_stats.py reads. Text chunks, in input order (a sample's questions are consecutive).
 */
export async function* benchmarkAnswers(requests: AsyncIterable<StoredRequest>): AsyncGenerator<string> {
  let samples = 0;
  let sample: { sample_id: string; qa: Record<string, unknown>[] } | undefined;
  const written = () => `${samples++ ? ',\n' : '['}${JSON.stringify(sample)}`;
  for await (const r of requests) {
    const q = questionOf(r);
    if (!q || q.reply === null) continue;
    const prediction = predictionOf(r.expect, q.reply);
    if (q.spec.name === 'longmemeval') {
      yield longMemEvalLine(r, q, prediction);
      continue;
    }
    const id = String(q.spec.ref.sample_id);
    if (sample && sample.sample_id !== id) yield written();
    if (sample?.sample_id !== id) sample = { sample_id: id, qa: [] };
    sample.qa.push(locomoQa(r, q, prediction));
  }
  if (sample) yield `${written()}]\n`;
}
