/**
 * The judge's prompts (expect.judge): a grading call asks a judge model whether a reply is right, and the judge answers
 * JSON {"pass": bool, "score": 0..1, "reason": "..."} (promptfoo's llm-rubric shape). One built-in prompt per kind of
 * question (the memory benchmarks' types: benchmark-input.ts); a template of the user's own replaces it for a run
 * (--judge-prompt), with the placeholders {{question}}, {{answer}}, {{rubric}} and {{reply}}.
 */

export const JUDGE_KINDS = [
  'default',
  'abstention',
  'temporal',
  'knowledge-update',
  'preference',
  'adversarial',
] as const;
export type JudgeKind = (typeof JUDGE_KINDS)[number];

const SYSTEM = `You grade an AI assistant's reply to a user's question. Reply with one JSON object and nothing else:
{"pass": true or false, "score": a number from 0 to 1, "reason": "one short sentence"}`;

/** What passes, by kind (LongMemEval's and LoCoMo's question types, graded as their papers grade them). */
const INSTRUCTIONS: Record<JudgeKind, string> = {
  default:
    'Pass when the reply gives the reference answer (the same facts; wording may differ; extra correct detail is fine) and does what the rubric asks. Fail when it gives another answer, only part of a required answer, or no answer.',
  abstention:
    'This question cannot be answered from what the user told the assistant. Pass only when the reply says it does not know or that this was never mentioned; fail when it gives an answer.',
  temporal:
    'The question is about time (dates, order, durations). Pass when the reply gives the reference answer; a count of days, weeks or months that is off by one still passes.',
  'knowledge-update':
    "The user's information changed over time, and the reference is the latest value. Pass when the reply gives the latest value (it may mention older ones as past); fail when it gives an older one as current.",
  preference:
    "The rubric says what a reply personalised to the user's stated preferences does. Pass when the reply uses those preferences as described; it need not match any wording.",
  adversarial:
    'The question rests on something that never happened in the conversation. Pass only when the reply says it does not know or that this was not mentioned; fail when it answers (the misleading answer is given as the rubric).',
};

/** The built-in template: the reference and the reply in tags, so the judge (and the simulator) can tell them apart. */
const TEMPLATE = `<question>{{question}}</question>
<reference>{{answer}}</reference>
<rubric>{{rubric}}</rubric>
<reply>{{reply}}</reply>`;

export interface JudgeInput {
  question: string;
  answer: string;
  rubric: string;
  reply: string;
}

/** Fills a template's placeholders in one pass (a value that holds "{{...}}" is not filled again). */
export function fillTemplate(template: string, input: JudgeInput): string {
  return template.replace(/\{\{(question|answer|rubric|reply)\}\}/g, (_, name: keyof JudgeInput) => input[name]);
}

/** The messages of a grading call. */
export function judgeMessages(
  input: JudgeInput,
  kind: JudgeKind = 'default',
  template?: string,
): { role: string; content: string }[] {
  if (template !== undefined)
    return [
      { role: 'system', content: SYSTEM },
      { role: 'user', content: fillTemplate(template, input) },
    ];
  return [
    { role: 'system', content: `${SYSTEM}\n\n${INSTRUCTIONS[kind]}` },
    { role: 'user', content: fillTemplate(TEMPLATE, input) },
  ];
}

/** The judge's JSON answer, or null when its reply is not that (then it is asked again, and at last ungraded). */
export function parseVerdict(text: string | null): { pass: boolean; score: number; reason: string } | null {
  if (text === null) return null;
  // A judge may wrap its JSON in a code fence or a sentence: the outermost {...} is read.
  const from = text.indexOf('{');
  const to = text.lastIndexOf('}');
  if (from < 0 || to <= from) return null;
  let v: unknown;
  try {
    v = JSON.parse(text.slice(from, to + 1));
  } catch {
    return null;
  }
  if (!v || typeof v !== 'object') return null;
  const { pass, score, reason } = v as Record<string, unknown>;
  if (typeof pass !== 'boolean') return null;
  const s = typeof score === 'number' && score >= 0 && score <= 1 ? score : pass ? 1 : 0;
  return { pass, score: s, reason: typeof reason === 'string' ? reason.slice(0, 2_000) : '' };
}
