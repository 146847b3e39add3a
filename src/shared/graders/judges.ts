import {
  fillTemplate,
  type JudgeInput,
  type JudgeKind,
  judgeMessages,
  parseVerdict,
  verdictFormat,
} from './chatq-judge.js';
import {
  formatPositional,
  LONGMEMEVAL_JUDGE,
  LONGMEMEVAL_JUDGE_PARAMS,
  LONGMEMEVAL_PROMPTS,
  longMemEvalLabel,
} from './longmemeval.js';
import { MEM0_JUDGE, MEM0_JUDGE_PARAMS, mem0Label, mem0Prompt } from './mem0.js';

/**
 * The judges a grading call can be graded by, each as its published harness calls it: chatq's own (a JSON verdict,
 * chatq-judge.ts), LongMemEval's (yes/no, longmemeval.ts) and the Mem0 paper's J (a JSON label, mem0.ts). Each gives
 * the call's messages and settings, and reads its judge's answer.
 */
export const GRADERS = ['chatq', 'longmemeval', 'mem0'] as const;
export type Grader = (typeof GRADERS)[number];

export interface Verdict {
  pass: boolean;
  score: number;
  reason: string;
}

/** A grading call, less its model: its messages and the settings its grader calls with. */
export interface GradingCall {
  messages: { role: string; content: string }[];
  params: Record<string, unknown>;
}

/** The most chatq's judge may write (its JSON verdict and a sentence). */
const CHATQ_JUDGE_MAX_TOKENS = 400;

/** The judge model a grader is published with, when it is one (used when no judge is named). */
export const GRADER_JUDGE: Partial<Record<Grader, string>> = { longmemeval: LONGMEMEVAL_JUDGE, mem0: MEM0_JUDGE };

const oneUserMessage = (content: string) => [{ role: 'user', content }];

/**
 * The grading call of a reply: the grader's prompt for the question's kind, or `template` (--judge-prompt) in its
 * place (its placeholders filled), with the grader's settings.
 */
export function gradingCall(
  grader: Grader,
  kind: JudgeKind,
  input: JudgeInput,
  model: string,
  template?: string,
): GradingCall {
  if (grader === 'chatq')
    return {
      messages: judgeMessages(input, kind, template),
      params: { max_tokens: CHATQ_JUDGE_MAX_TOKENS, temperature: 0, ...verdictFormat(model) },
    };
  const own =
    template !== undefined
      ? fillTemplate(template, input)
      : grader === 'longmemeval'
        ? formatPositional(LONGMEMEVAL_PROMPTS[kind === 'adversarial' ? 'default' : kind], [
            input.question,
            input.answer || input.rubric,
            input.reply,
          ])
        : mem0Prompt(input.question, input.answer, input.reply);
  return {
    messages: oneUserMessage(own),
    params: grader === 'longmemeval' ? { ...LONGMEMEVAL_JUDGE_PARAMS } : { ...MEM0_JUDGE_PARAMS },
  };
}

/** The most tokens a grader's judge may answer with, for estimates and budgets (Mem0's sets none: chatq's bound). */
export const verdictTokens = (grader: Grader) =>
  grader === 'longmemeval' ? LONGMEMEVAL_JUDGE_PARAMS.max_tokens : CHATQ_JUDGE_MAX_TOKENS;

/** The judge's answer as its grader reads it, or null when it is not a verdict (it is asked again, then ungraded). */
export function gradingVerdict(grader: Grader, text: string | null): Verdict | null {
  if (grader === 'chatq') return parseVerdict(text);
  if (text === null) return null;
  const pass = grader === 'longmemeval' ? longMemEvalLabel(text) : mem0Label(text);
  if (pass === undefined) return null;
  return { pass, score: pass ? 1 : 0, reason: text.trim().slice(0, 500) };
}
