import { type Expect, type JudgeSpec, judgeOf, predictionOf } from './expectations.js';
import type { JudgeInput } from './graders/chatq-judge.js';
import { GRADER_JUDGE, gradingCall, gradingVerdict, type Verdict } from './graders/judges.js';

/**
 * A grading call (expect.judge) as the worker sends it and an estimate counts it: its judge (the line's, else
 * --judge-model or CHATQ_JUDGE_MODEL, else the grader's published one, else the answering model), and its body: the
 * grader's prompt (or --judge-prompt's) for the question, the reference and the prediction, with the grader's settings.
 */

const textOf = (content: unknown) => (typeof content === 'string' ? content : JSON.stringify(content ?? ''));

/** The last user message of a call: what the judge is told the question was, when the judge names none. */
function lastUserMessage(messages: Record<string, unknown>[]): string {
  for (let i = messages.length - 1; i >= 0; i--) if (messages[i]!.role === 'user') return textOf(messages[i]!.content);
  return '';
}

/** The judge model of a judge expectation. */
export const judgeModelOf = (judge: JudgeSpec, configured: string | undefined, answering: string) =>
  judge.model ?? configured ?? GRADER_JUDGE[judge.grader ?? 'chatq'] ?? answering;

/** What the judge is given: the question, the reference, the rubric, and what the reply answers. */
export function judgeInputOf(
  expect: Expect | null,
  judge: JudgeSpec,
  messages: Record<string, unknown>[],
  reply: string,
): JudgeInput {
  return {
    question: judge.question ?? lastUserMessage(messages),
    answer: judge.answer ?? '',
    rubric: judge.rubric ?? '',
    reply: predictionOf(expect, reply),
  };
}

/** A grading call's body. */
export function gradingBody(judge: JudgeSpec, input: JudgeInput, model: string): Record<string, unknown> {
  const call = gradingCall(judge.grader ?? 'chatq', judge.kind ?? 'default', input, model, judge.prompt);
  return { model, messages: call.messages, ...call.params };
}

/** The judge's answer to a grading of `expect`, as its grader reads it (null: not a verdict). */
export const verdictFor = (expect: Expect | null, text: string | null): Verdict | null =>
  gradingVerdict(judgeOf(expect)?.grader ?? 'chatq', text);
