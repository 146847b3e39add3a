import { RE2JS } from 're2js';
import { z } from 'zod';
import { LIMITS, modelNameSchema } from './input-limits.js';
import { bleu1 } from './graders/bleu1.js';
import { JUDGE_KINDS } from './graders/chatq-judge.js';
import { GRADERS } from './graders/judges.js';
import { type LocomoCategory, locomoF1, pyRound } from './graders/locomo-f1.js';
import { locomoPrediction } from './graders/locomo.js';

/**
 * Expectations on a reply, for evaluation suites: any input line (or script turn) may carry `expect`, one object
 * or a list of them; every expectation must hold for the request to pass.
 *   contains / not_contains: text or list of texts, case-insensitive
 *   regex: "pattern" or "/pattern/flags"
 *   equals: the whole reply, trimmed
 *   json: true (the reply parses as JSON) or a JSON Schema the parsed reply must match
 *   max_latency_ms: the call answered within this time
 *   judge: a judge model grades the reply against a reference answer and/or a rubric (graders/judges.ts: chatq's
 *     own, LongMemEval's or Mem0's); at most one per request, asked only when the other expectations hold
 *   benchmark: (a memory benchmark's question, set by the parser) its item's reference as published, for exports and
 *     reports; a LoCoMo question is scored too (F1, BLEU-1), without a call
 */
const texts = z.union([z.string(), z.array(z.string()).min(1)]);

const regexText = z
  .string()
  .max(LIMITS.regexChars)
  .superRefine((p, ctx) => {
    try {
      toPattern(p);
    } catch (err) {
      ctx.addIssue({
        code: 'custom',
        message: `not a valid RE2 regular expression (linear-time matching: no backreferences or lookaround): ${(err as Error).message}`,
      });
    }
  });

/** JSON Schema keywords that would run a backtracking JavaScript regex on a reply. */
const REGEX_KEYWORDS = ['pattern', 'patternProperties'];

/** The first regex keyword anywhere in a schema (walked without recursion; its depth is bounded by the line's). */
function regexKeyword(schema: unknown): string | undefined {
  const stack: unknown[] = [schema];
  while (stack.length) {
    const v = stack.pop();
    if (!v || typeof v !== 'object') continue;
    if (!Array.isArray(v)) {
      const found = REGEX_KEYWORDS.find((k) => k in v);
      if (found) return found;
    }
    stack.push(...Object.values(v));
  }
  return undefined;
}

const jsonSchema = z.record(z.string(), z.unknown()).superRefine((schema, ctx) => {
  const keyword = regexKeyword(schema);
  if (keyword) {
    ctx.addIssue({
      code: 'custom',
      message: `"${keyword}" is not supported in JSON Schema expectations (it would run a backtracking regex); use a "regex" expectation`,
    });
    return;
  }
  try {
    z.fromJSONSchema(schema as never);
  } catch {
    ctx.addIssue({ code: 'custom', message: 'not a JSON Schema chatq can check' });
  }
});

const judgeText = z.string().min(1).max(LIMITS.judgeChars);

/** Whether a judge prompt template names {{reply}} once and the other placeholders at most once each. */
function placeholdersOnce(template: string): boolean {
  const seen = new Map<string, number>();
  for (const m of template.matchAll(/\{\{(question|answer|rubric|reply)\}\}/g))
    seen.set(m[1]!, (seen.get(m[1]!) ?? 0) + 1);
  return seen.get('reply') === 1 && [...seen.values()].every((n) => n === 1);
}

/**
 * A judge prompt template: {{reply}} once, {{question}}, {{answer}} and {{rubric}} at most once each, so a filled
 * prompt is the template and each of its inputs once (a reply is not copied into it a thousand times).
 */
export const judgeTemplateSchema = judgeText.refine(placeholdersOnce, {
  message: 'a judge prompt template names {{reply}} once, and {{question}}, {{answer}}, {{rubric}} at most once each',
});

export const judgeSchema = z
  .object({
    answer: judgeText.optional(),
    rubric: judgeText.optional(),
    model: modelNameSchema.optional(),
    threshold: z.number().min(0).max(1).optional(),
    /** A prompt template ({{question}}, {{answer}}, {{rubric}}, {{reply}}) in place of the built-in one. */
    prompt: judgeTemplateSchema.optional(),
    /** Which built-in prompt grades it (a memory benchmark's question type); "default" when absent. */
    kind: z.enum(JUDGE_KINDS).optional(),
    /** Whose judge: chatq's (default), LongMemEval's or Mem0's (graders/judges.ts). */
    grader: z.enum(GRADERS).optional(),
    /** The question as the judge is told it, when it is not the call's last user message (a benchmark's own). */
    question: judgeText.optional(),
  })
  .strict()
  .refine((j) => j.answer !== undefined || j.rubric !== undefined, {
    message: 'a judge needs "answer" (the reference) or "rubric" (what a good reply does), or both',
  });
export type JudgeSpec = z.infer<typeof judgeSchema>;

/** A memory benchmark's question: which benchmark, its item's reference as published, and (LoCoMo) how it scores. */
export const benchmarkSchema = z
  .object({
    name: z.enum(['longmemeval', 'locomo']),
    /** The published item's fields of this question (no sessions): what the official scorers read back. */
    ref: z.record(z.string(), z.unknown()),
    /** LoCoMo: its category, and a category-5 question's options (the reply may name one). */
    category: z.number().int().min(1).max(5).optional(),
    options: z.object({ a: z.string(), b: z.string() }).strict().optional(),
  })
  .strict();
export type BenchmarkSpec = z.infer<typeof benchmarkSchema>;

export const expectationSchema = z
  .object({
    contains: texts.optional(),
    not_contains: texts.optional(),
    regex: regexText.optional(),
    equals: z.string().optional(),
    json: z.union([z.literal(true), jsonSchema]).optional(),
    max_latency_ms: z.number().positive().optional(),
    judge: judgeSchema.optional(),
    benchmark: benchmarkSchema.optional(),
  })
  .strict()
  .refine((e) => Object.keys(e).length > 0, {
    message: 'an expectation needs at least one of contains, not_contains, regex, equals, json, max_latency_ms, judge',
  });

/** Scores a reply gets without a call: LoCoMo's F1 (as its script rounds it) and BLEU-1 (none for category 5). */
export interface Scores {
  f1: number;
  b1: number | null;
}

export type Expectation = z.infer<typeof expectationSchema>;

export const expectSchema = z
  .union([expectationSchema, z.array(expectationSchema).min(1)])
  .refine((e) => !Array.isArray(e) || e.filter((x) => x.judge).length <= 1, {
    message: 'at most one "judge" expectation per request',
  });
export type Expect = z.infer<typeof expectSchema>;

export interface ExpectationFailure {
  kind: string;
  expected: unknown;
  message: string;
}

/** What a judge model said of a reply. */
export interface JudgeVerdict {
  model: string;
  /** null: ungraded (the judge's reply was not the JSON asked for, or the judge could not be called). */
  pass: boolean | null;
  score: number | null;
  reason: string;
  threshold?: number;
}

export interface Grade {
  pass: boolean;
  failures: ExpectationFailure[];
  /** Scores without a call (a LoCoMo question); a grade of scores alone is neither passed nor failed. */
  scores?: Scores;
  /** Neither passed nor failed: its judge gave no verdict (the judge's text is in `judge.reason`). */
  ungraded?: boolean;
  /** Waiting for its judge (its grading call); set until the judgement is written. */
  judging?: boolean;
  /** Graded by scores alone (no expectation that passes or fails). */
  scored?: boolean;
  judge?: JudgeVerdict;
}

/** A grade's verdict as counted: pass, fail, ungraded, or none (a grade of scores alone counts in no pass rate). */
export const verdictOfGrade = (g: Grade): 'pass' | 'fail' | 'ungraded' | undefined =>
  g.ungraded || g.judging ? 'ungraded' : g.scored ? undefined : g.pass ? 'pass' : 'fail';

const expectations = (expect: Expect | null): Expectation[] =>
  expect === null ? [] : Array.isArray(expect) ? expect : [expect];

/** The request's judge expectation, if it has one. */
export function judgeOf(expect: Expect | null): JudgeSpec | undefined {
  return expectations(expect).find((e) => e.judge)?.judge;
}

/** The request's memory benchmark question, if it is one. */
export function benchmarkOf(expect: Expect | null): BenchmarkSpec | undefined {
  return expectations(expect).find((e) => e.benchmark)?.benchmark;
}

/** What a reply answers, as its benchmark's scorers read it (LoCoMo: stripped, a category-5 choice as its option). */
export function predictionOf(expect: Expect | null, reply: string): string {
  const b = benchmarkOf(expect);
  return b?.name === 'locomo' ? locomoPrediction(reply, b.options) : b ? reply.trim() : reply;
}

/** A LoCoMo question's scores: its F1 as LoCoMo's script writes it (3 places), its BLEU-1 as Mem0's (not category 5). */
function locomoScores(b: BenchmarkSpec, reply: string): Scores {
  const category = b.category as LocomoCategory;
  const answer = String(b.ref.answer ?? b.ref.adversarial_answer ?? '');
  const prediction = locomoPrediction(reply, b.options);
  return {
    f1: pyRound(locomoF1(prediction, answer, category), 3),
    b1: category === 5 ? null : bleu1(prediction, String(b.ref.answer ?? '')),
  };
}

/** A grade with its judge's verdict in (the verdict decides what the other expectations let pass). */
export function withVerdict(g: Grade, v: JudgeVerdict): Grade {
  const { judging: _, ...rest } = g;
  const failures =
    v.pass === false
      ? [...g.failures, { kind: 'judge', expected: v.threshold ?? 'pass', message: v.reason }]
      : g.failures;
  return v.pass === null
    ? { ...rest, pass: false, ungraded: true, judge: v }
    : { ...rest, pass: g.pass && v.pass, failures, judge: v };
}

const RE2_FLAGS: Record<string, number> = { i: RE2JS.CASE_INSENSITIVE, m: RE2JS.MULTILINE, s: RE2JS.DOTALL };

/** "pattern" or "/pattern/flags", compiled for RE2 (linear-time matching); flags i, m, s apply, g/u/y/d change nothing. */
function toPattern(p: string): RE2JS {
  const m = /^\/(.*)\/([dgimsuy]*)$/s.exec(p);
  if (!m) return RE2JS.compile(p);
  const flags = [...m[2]!].reduce((acc, f) => acc | (RE2_FLAGS[f] ?? 0), 0);
  return RE2JS.compile(m[1]!, flags);
}

const list = (v: string | string[]) => (Array.isArray(v) ? v : [v]);

/** Grades one result against its expectations. A request that failed (no reply) fails every expectation set. */
export function grade(expect: Expect, reply: string | null, latencyMs: number | null): Grade {
  if (reply === null)
    return {
      pass: false,
      failures: [{ kind: 'reply', expected: 'a reply', message: 'the request failed: no reply to check' }],
    };
  const failures: ExpectationFailure[] = [];
  const fail = (kind: string, expected: unknown, message: string) => failures.push({ kind, expected, message });
  const lower = reply.toLowerCase();
  for (const e of expectations(expect)) {
    for (const t of e.contains === undefined ? [] : list(e.contains))
      if (!lower.includes(t.toLowerCase())) fail('contains', t, `reply does not contain "${t}"`);
    for (const t of e.not_contains === undefined ? [] : list(e.not_contains))
      if (lower.includes(t.toLowerCase())) fail('not_contains', t, `reply contains "${t}"`);
    if (e.regex !== undefined && !toPattern(e.regex).test(reply))
      fail('regex', e.regex, `reply does not match ${e.regex}`);
    if (e.equals !== undefined && reply.trim() !== e.equals.trim())
      fail('equals', e.equals, 'reply is not equal to the expected text');
    if (e.json !== undefined) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(reply);
      } catch {
        fail('json', e.json, 'reply is not JSON');
        continue;
      }
      if (e.json !== true) {
        const r = z.fromJSONSchema(e.json as never).safeParse(parsed);
        if (!r.success)
          fail(
            'json',
            e.json,
            `reply does not match the schema: ${r.error.issues[0]!.path.join('.') || '(root)'}: ${r.error.issues[0]!.message}`,
          );
      }
    }
    if (e.max_latency_ms !== undefined && (latencyMs === null || latencyMs > e.max_latency_ms))
      fail('max_latency_ms', e.max_latency_ms, `answered in ${latencyMs ?? '?'} ms`);
  }
  // A judge is asked only when everything else holds (a reply that failed already needs no paid judgement).
  const judging = judgeOf(expect) !== undefined && failures.length === 0;
  const b = benchmarkOf(expect);
  const scores = b?.name === 'locomo' ? locomoScores(b, reply) : undefined;
  // Scores alone pass or fail nothing: such a grade counts in no pass rate.
  const scored = expectations(expect).every((e) => Object.keys(e).every((k) => k === 'benchmark'));
  return {
    pass: failures.length === 0,
    failures,
    ...(judging ? { judging } : {}),
    ...(scores ? { scores } : {}),
    ...(scored ? { scored } : {}),
  };
}

/** The text of a chat completion's first choice (text parts joined), or null. */
export function replyText(completion: Record<string, unknown> | null): string | null {
  const content = (completion?.choices as { message?: { content?: unknown } }[] | undefined)?.[0]?.message?.content;
  if (typeof content === 'string') return content;
  if (Array.isArray(content))
    return content.map((p) => (p && typeof p === 'object' && 'text' in p ? String(p.text) : '')).join('');
  return content === undefined || content === null ? null : JSON.stringify(content);
}
