import { z } from 'zod';
import { LIMITS } from '../../shared/input-limits.js';
import { LOCOMO_ANSWER_PARAMS, locomoQuestion } from '../../shared/graders/locomo.js';
import { LOCOMO_CATEGORIES, type LocomoCategory } from '../../shared/graders/locomo-f1.js';
import type { RequestDraft } from '../../shared/request-record.js';
import { type BenchmarkContext, itemCalls, type Session, userCall, wanted } from './benchmark-calls.js';

/**
 * LoCoMo (Maharana et al., ACL 2024) as input: a sample holds a long conversation of two speakers over dated sessions
 * (`conversation.session_N`, `session_N_date_time`) and its QA (`qa`: question, answer, category 1-5; 5 adversarial,
 * with `adversarial_answer`). One fresh user per sample (the first speaker is the user): its sessions, then each of
 * its questions as LoCoMo asks it, scored as LoCoMo's script scores it (F1, and BLEU-1 as Mem0 reports it: no call)
 * and judged by Mem0's J (not category 5, as Mem0 leaves it out, unless --judge-adversarial) or the grader chosen.
 */

const text = z.string().min(1).max(LIMITS.judgeChars);
const answer = z.union([z.string().max(LIMITS.judgeChars), z.number()]).transform(String);
const locomoTurn = z.looseObject({ speaker: z.string(), text: z.string(), blip_caption: z.string().optional() });
const locomoQa = z.looseObject({
  question: text,
  answer: answer.optional(),
  adversarial_answer: answer.optional(),
  category: z.number().int().min(1).max(5),
});
const sample = z.looseObject({
  sample_id: z.union([z.string().min(1).max(200), z.number()]).transform(String),
  conversation: z.looseObject({ speaker_a: z.string(), speaker_b: z.string() }),
  qa: z.array(z.unknown()),
});

/** The reference a judge grades against: the answer; for category 5 its "answer" if any, else "not mentioned". */
const NOT_MENTIONED = 'Not mentioned in the conversation';

/** The sessions of a LoCoMo conversation, as listed (session_1, session_2, ...): itemCalls puts them in time order. */
function sessionsOf(c: BenchmarkContext, sampleId: string, conversation: Record<string, unknown>): Session[] {
  const found: { n: number; turns: unknown }[] = [];
  for (const [key, turns] of Object.entries(conversation)) {
    const m = /^session_(\d+)$/.exec(key);
    if (m && Array.isArray(turns)) found.push({ n: Number(m[1]), turns });
  }
  return found
    .sort((a, b) => a.n - b.n)
    .map(({ n, turns }) => {
      const field = `conversation.session_${n}`;
      const date = conversation[`session_${n}_date_time`];
      return {
        field,
        customId: `${sampleId}/session-${n}`,
        date: typeof date === 'string' ? date : 'an unknown date',
        turns: c.check(z.array(locomoTurn), turns, field).map((t) => ({
          role: t.speaker === conversation.speaker_a ? 'user' : 'assistant',
          content: `${t.speaker}: ${t.text}${t.blip_caption ? ` [shares ${t.blip_caption}]` : ''}`,
        })),
      };
    });
}

/** A sample: its sessions, then each of its questions asked for. */
export function locomoDrafts(obj: Record<string, unknown>, c: BenchmarkContext): RequestDraft[] {
  const x = c.check(sample, obj);
  const grader = c.judge.grader ?? 'mem0';
  if (grader === 'longmemeval')
    c.fail(undefined, '--grader longmemeval grades LongMemEval files; LoCoMo is graded by mem0 or chatq');
  const userid = c.userid(`locomo:${x.sample_id}`);
  const questions = x.qa.flatMap((raw, i): RequestDraft[] => {
    const q = c.check(locomoQa, raw, `qa.${i}`);
    const category = q.category as LocomoCategory;
    const tag = LOCOMO_CATEGORIES[category];
    if (!wanted(c, [tag])) return [];
    const asked = locomoQuestion(q.question, category, q.answer ?? q.adversarial_answer ?? '', `${x.sample_id}/${i}`);
    const reference = q.answer ?? (category === 5 ? NOT_MENTIONED : '');
    const judged = grader !== 'none' && (category !== 5 || c.judgeAdversarial) && reference !== '';
    const judge = judged
      ? [
          {
            judge: {
              grader,
              kind:
                category === 5
                  ? ('adversarial' as const)
                  : category === 2
                    ? ('temporal' as const)
                    : ('default' as const),
              question: q.question,
              answer: reference,
              ...(category === 5 && q.adversarial_answer
                ? { rubric: `A misleading answer: ${q.adversarial_answer}` }
                : {}),
              ...(c.judge.model ? { model: c.judge.model } : {}),
              ...(c.judge.prompt !== undefined ? { prompt: c.judge.prompt } : {}),
            },
          },
        ]
      : [];
    const benchmark = {
      name: 'locomo' as const,
      ref: { sample_id: x.sample_id, ...(raw as Record<string, unknown>) },
      category,
      ...(asked.options ? { options: asked.options } : {}),
    };
    return [
      userCall(c, userid, `${x.sample_id}/qa-${i + 1}`, [{ role: 'user', content: asked.prompt }], {
        body: { ...LOCOMO_ANSWER_PARAMS },
        expect: [{ benchmark }, ...judge],
        tags: [tag],
      }),
    ];
  });
  if (questions.length === 0) return [];
  return itemCalls(c, userid, sessionsOf(c, x.sample_id, x.conversation), questions, 'conversation');
}
