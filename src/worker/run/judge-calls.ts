import { judgeOf, replyText, withVerdict, type Grade } from '../../shared/expectations.js';
import { gradingVerdict } from '../../shared/graders/judges.js';
import { gradingBody, judgeInputOf, judgeModelOf } from '../../shared/grading-call.js';
import { gradingId, gradingLane } from '../store/finish-call.js';
import type { FinishedRequest, GradingDraft, GradingOf, StartedRequest } from '../store/request-claims.js';
import type { ProcessorDeps } from './processor-deps.js';
import { ZERO_USAGE } from './call-results.js';

/**
 * Gradings (expect.judge): the grading call a reply makes, and what the judge's answer writes into the judged request.
 * A grading is a request of its batch like any other (queue, limits, retries, pause, budget, cost), on a lane of its
 * own and called without userid: no user's memory sees it, and no user's next turn waits for it.
 */

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
  const model = judgeModelOf(judge, deps.judge.model, started.model);
  const of: GradingOf = {
    of: started.id,
    grade,
    ...(judge.threshold !== undefined ? { threshold: judge.threshold } : {}),
    ...(judge.grader && judge.grader !== 'chatq' ? { grader: judge.grader } : {}),
  };
  return {
    id: gradingId(started.id),
    lane: gradingLane(started.id),
    custom_id: `${started.id}#judge`,
    model,
    judges: JSON.stringify(of),
    body: JSON.stringify(gradingBody(judge, judgeInputOf(started.expect, judge, messages, reply), model)),
  };
}

/** Judge replies that are not the JSON verdict asked for, asked again within the run (each call paid and counted). */
export const JUDGE_REASKS = 2;

/** Whether a grading's reply is not a verdict. */
export const unreadableVerdict = (started: StartedRequest, completion: Record<string, unknown>) =>
  started.judges !== undefined && gradingVerdict(started.judges.grader ?? 'chatq', replyText(completion)) === null;

/** A grading's result with the judged request's grade in: the verdict, or ungraded (the judge's text, or why not). */
export function withJudgement(started: StartedRequest, result: FinishedRequest): FinishedRequest {
  const of = started.judges;
  if (!of) return result;
  const reply = replyText(result.response ?? null);
  const verdict = result.status === 'succeeded' ? gradingVerdict(of.grader ?? 'chatq', reply) : null;
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
