import { judgeOf, replyText, withVerdict, type Grade } from '../../shared/expectations.js';
import { judgeMessages, parseVerdict, verdictFormat } from '../../shared/judge-prompts.js';
import { gradingId, gradingLane } from '../store/finish-call.js';
import type { FinishedRequest, GradingDraft, GradingOf, StartedRequest } from '../store/request-claims.js';
import type { ProcessorDeps } from './processor-deps.js';
import { ZERO_USAGE } from './call-results.js';

/**
 * Gradings (expect.judge): the grading call a reply makes, and what the judge's answer writes into the judged request.
 * A grading is a request of its batch like any other (queue, limits, retries, pause, budget, cost), on a lane of its
 * own and called without userid: no user's memory sees it, and no user's next turn waits for it.
 */

/** The most a judge may write (its JSON verdict and a sentence). */
const JUDGE_MAX_TOKENS = 400;

const textOf = (content: unknown) => (typeof content === 'string' ? content : JSON.stringify(content ?? ''));

/** The last user message of a call: what the judge is told the question was. */
function questionOf(messages: Record<string, unknown>[]): string {
  for (let i = messages.length - 1; i >= 0; i--) if (messages[i]!.role === 'user') return textOf(messages[i]!.content);
  return '';
}

/** The grading call a reply whose grade waits for its judge makes. */
export function gradingDraft(
  deps: ProcessorDeps,
  started: StartedRequest,
  messages: Record<string, unknown>[],
  reply: string,
  grade: Grade,
): GradingDraft | undefined {
  const judge = judgeOf(started.expect);
  if (!judge || !grade.judging) return undefined;
  const model = judge.model ?? deps.judge.model ?? started.model;
  const input = { question: questionOf(messages), answer: judge.answer ?? '', rubric: judge.rubric ?? '', reply };
  const of: GradingOf = {
    of: started.id,
    grade,
    ...(judge.threshold !== undefined ? { threshold: judge.threshold } : {}),
  };
  return {
    id: gradingId(started.id),
    lane: gradingLane(started.id),
    custom_id: `${started.id}#judge`,
    model,
    judges: JSON.stringify(of),
    body: JSON.stringify({
      model,
      messages: judgeMessages(input, judge.kind, judge.prompt),
      max_tokens: JUDGE_MAX_TOKENS,
      temperature: 0,
      ...verdictFormat(model),
    }),
  };
}

/** Judge replies that are not the JSON verdict asked for, asked again within the run (each call paid and counted). */
export const JUDGE_REASKS = 2;

/** Whether a grading's reply is not a verdict. */
export const unreadableVerdict = (started: StartedRequest, completion: Record<string, unknown>) =>
  started.judges !== undefined && parseVerdict(replyText(completion)) === null;

/** A grading's result with the judged request's grade in: the verdict, or ungraded (the judge's text, or why not). */
export function withJudgement(started: StartedRequest, result: FinishedRequest): FinishedRequest {
  const of = started.judges;
  if (!of) return result;
  const reply = replyText(result.response ?? null);
  const verdict = result.status === 'succeeded' ? parseVerdict(reply) : null;
  const threshold = of.threshold;
  const reason =
    verdict?.reason ??
    (result.status === 'succeeded' ? `not a verdict: ${(reply ?? '').slice(0, 500)}` : (result.error?.message ?? ''));
  const grade = withVerdict(of.grade, {
    model: started.model,
    pass: verdict ? verdict.pass && (threshold === undefined || verdict.score >= threshold) : null,
    score: verdict?.score ?? null,
    reason,
    ...(threshold !== undefined ? { threshold } : {}),
  });
  return { ...result, judged: { of: of.of, grade } };
}

/** A grading ended without a call (its batch stopped, or its budget cannot pay for it): the judged request is ungraded. */
export function gradingNotCalled(started: StartedRequest, code: string, message: string): FinishedRequest {
  return withJudgement(started, {
    status: 'failed',
    error: { code, message },
    usage: ZERO_USAGE,
    costNano: 0,
    attempts: [],
  });
}
