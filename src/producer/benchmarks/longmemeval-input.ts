import { z } from 'zod';
import { LIMITS } from '../../shared/input-limits.js';
import {
  LONGMEMEVAL_ANSWER_PARAMS,
  longMemEvalPrompt,
  longMemEvalQuestion,
  LONGMEMEVAL_TYPES,
} from '../../shared/graders/longmemeval.js';
import type { RequestDraft } from '../../shared/request-record.js';
import { type BenchmarkContext, itemCalls, userCall, wanted } from './benchmark-calls.js';

/**
 * LongMemEval (Wu et al., ICLR 2025) as input: an instance holds one question about a user's history of chat sessions
 * (`haystack_sessions`, lists of {role, content} turns, dated by `haystack_dates`); ids ending in `_abs` are
 * abstention questions (the history cannot answer them). One fresh user per instance: its sessions, then its
 * question as LongMemEval asks it, graded by LongMemEval's judge unless another grader is chosen.
 */

const text = z.string().min(1).max(LIMITS.judgeChars);
const turn = z.looseObject({ role: z.string(), content: z.string() });
const instance = z.looseObject({
  question_id: z.union([z.string().min(1).max(200), z.number()]).transform(String),
  question_type: z.string().min(1).max(100),
  question: text,
  answer: z.union([z.string().max(LIMITS.judgeChars), z.number()]).transform(String),
  question_date: z.string().max(100).optional(),
  haystack_dates: z.array(z.string().max(100)),
  haystack_sessions: z.array(z.array(turn)),
});

/** An instance: its sessions, then its question. None when its type is not asked for. */
export function longMemEvalDrafts(obj: Record<string, unknown>, c: BenchmarkContext): RequestDraft[] {
  const x = c.check(instance, obj);
  if (x.haystack_dates.length !== x.haystack_sessions.length)
    c.fail(
      'haystack_dates',
      `${x.haystack_dates.length} dates for ${x.haystack_sessions.length} sessions: each session needs its date`,
    );
  const abstention = x.question_id.endsWith('_abs');
  const grader = c.judge.grader ?? 'longmemeval';
  if (grader === 'mem0')
    c.fail(undefined, '--grader mem0 grades LoCoMo files; LongMemEval is graded by longmemeval or chatq');
  const prompt = longMemEvalPrompt(x.question_type, abstention);
  if (!prompt)
    c.fail(
      'question_type',
      `"${x.question_type}" is not one of LongMemEval's types (${LONGMEMEVAL_TYPES.join(', ')}): its grader has no prompt for it (--grader chatq grades any)`,
    );
  const tags = abstention ? [x.question_type, 'abstention'] : [x.question_type];
  const userid = c.userid(`longmemeval:${x.question_id}`);
  const sessions = x.haystack_sessions.map((turns, i) => ({
    field: `haystack_sessions.${i}`,
    customId: `${x.question_id}/session-${i + 1}`,
    date: x.haystack_dates[i]!,
    turns: turns.map((t) => ({ role: t.role === 'assistant' ? 'assistant' : 'user', content: t.content })),
  }));
  const ref = {
    question_id: x.question_id,
    question_type: x.question_type,
    question: x.question,
    answer: obj.answer,
    ...(x.question_date !== undefined ? { question_date: x.question_date } : {}),
  };
  const judge =
    grader === 'none'
      ? []
      : [
          {
            judge: {
              grader,
              kind: prompt,
              question: x.question,
              ...(prompt === 'preference' ? { rubric: x.answer } : { answer: x.answer }),
              ...(c.judge.model ? { model: c.judge.model } : {}),
              ...(c.judge.prompt !== undefined ? { prompt: c.judge.prompt } : {}),
            },
          },
        ];
  const question = userCall(
    c,
    userid,
    x.question_id,
    [{ role: 'user', content: longMemEvalQuestion(x.question_date ?? '', x.question) }],
    {
      body: { ...LONGMEMEVAL_ANSWER_PARAMS },
      expect: [{ benchmark: { name: 'longmemeval', ref } }, ...judge],
      tags,
    },
  );
  if (!wanted(c, tags)) return [];
  return itemCalls(c, userid, sessions, [question], 'haystack_sessions');
}
