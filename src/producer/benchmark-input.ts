import { z } from 'zod';
import { LIMITS } from '../shared/input-limits.js';
import type { JudgeKind } from '../shared/judge-prompts.js';
import type { RequestDraft } from '../shared/request-record.js';

/**
 * Memory benchmarks as input, recognised by their shape (an item of a JSON array, or a line):
 * - LongMemEval (Wu et al., ICLR 2025): an instance holds one question about a user's history of chat sessions
 *   (`haystack_sessions`, lists of {role, content} turns, dated by `haystack_dates`); ids ending in `_abs` are
 *   abstention questions (the history cannot answer them).
 * - LoCoMo (Maharana et al., ACL 2024): a sample holds a long conversation of two speakers over dated sessions
 *   (`conversation.session_N`, `session_N_date_time`) and its QA (`qa`: question, answer, category 1-5; 5 adversarial,
 *   with `adversarial_answer`).
 * Each instance or sample is one fresh user. Its sessions are ingested first, in order, one call per session carrying
 * the session's turns as they were recorded (assistant turns too) after a system message with its date: the memory
 * sees each conversation as it happened, at the cost of one call per session (turn by turn would cost one call per
 * turn and resend the session's earlier turns with each: quadratic in the session's length). Then each question is
 * asked alone, graded by a judge with the prompt for its type, and tagged with its type.
 */

/** A question, or its reference answer: what goes into a grading call's prompt, bounded as a judge's answer is. */
const judgedText = z.string().min(1).max(LIMITS.judgeChars);
const answerText = z.union([z.string().max(LIMITS.judgeChars), z.number()]).transform(String);

const turn = z.looseObject({ role: z.string(), content: z.string() });
const longMemEval = z.looseObject({
  question_id: z.union([z.string().min(1).max(200), z.number()]).transform(String),
  question_type: z.string().min(1).max(100),
  question: judgedText,
  answer: answerText,
  question_date: z.string().max(100).optional(),
  haystack_dates: z.array(z.string().max(100)),
  haystack_session_ids: z.array(z.union([z.string(), z.number()]).transform(String)).optional(),
  haystack_sessions: z.array(z.array(turn)),
});

const locomoTurn = z.looseObject({
  speaker: z.string(),
  text: z.string(),
  dia_id: z.string().optional(),
  blip_caption: z.string().optional(),
});
const locomoQa = z.looseObject({
  question: judgedText,
  answer: answerText.optional(),
  adversarial_answer: answerText.optional(),
  category: z.number().int().min(1).max(5),
});
const locomo = z.looseObject({
  sample_id: z.union([z.string().min(1).max(200), z.number()]).transform(String),
  conversation: z.looseObject({ speaker_a: z.string(), speaker_b: z.string() }),
  qa: z.array(locomoQa),
});

/** LoCoMo's QA categories, as its evaluation code names them. */
export const LOCOMO_CATEGORIES: Record<number, string> = {
  1: 'multi-hop',
  2: 'temporal',
  3: 'open-domain',
  4: 'single-hop',
  5: 'adversarial',
};

/** The judge prompt for a LongMemEval question type (judge-prompts.ts). */
function longMemEvalKind(type: string, abstention: boolean): JudgeKind {
  if (abstention) return 'abstention';
  if (type === 'temporal-reasoning') return 'temporal';
  if (type === 'knowledge-update') return 'knowledge-update';
  if (type === 'single-session-preference') return 'preference';
  return 'default';
}

export type BenchmarkFormat = 'longmemeval' | 'locomo';

/** Which benchmark an item is, by its shape; undefined: not one (a chatq line). */
export function benchmarkFormat(obj: Record<string, unknown>): BenchmarkFormat | undefined {
  if ('haystack_sessions' in obj && 'question_id' in obj) return 'longmemeval';
  if ('sample_id' in obj && 'conversation' in obj && 'qa' in obj) return 'locomo';
  return undefined;
}

/** What the parser gives a benchmark item: how to check a part, and the request fields every call shares. */
export interface BenchmarkContext {
  check<S extends z.ZodType>(schema: S, value: unknown, field?: string): z.output<S>;
  fail(field: string, message: string): never;
  userid(user: string): string;
  model: string;
  line: number;
  /** Question types (tags) to keep; empty: all. */
  types: string[];
  gapMs: number | undefined;
  judgeModel: string | undefined;
}

const END_OF_SESSION = (date: string) => `[chatq: end of the recorded session of ${date}; reply "OK"]`;
/** A session's ingestion call needs no real reply. */
const INGEST_MAX_TOKENS = 16;

/** A call of the instance's user: its messages and body fields, and the request fields every such call shares. */
function userCall(
  c: BenchmarkContext,
  userid: string,
  customId: string,
  messages: { role: string; content: string }[],
  rest: Partial<RequestDraft> & { body?: Record<string, unknown> },
): RequestDraft {
  const { body, ...fields } = rest;
  return {
    customId,
    userid,
    model: c.model,
    body: { model: c.model, messages, ...body },
    line: c.line,
    onFailure: 'continue',
    history: 'memory',
    ...(c.gapMs ? { gapMs: c.gapMs } : {}),
    ...fields,
  };
}

/** One call that hands the memory a recorded session, with its date. */
function sessionDraft(
  c: BenchmarkContext,
  userid: string,
  customId: string,
  date: string,
  label: string,
  messages: { role: string; content: string }[],
): RequestDraft {
  const framed = [
    { role: 'system', content: `The conversation below took place on ${date} (${label}).` },
    ...messages,
    { role: 'user', content: END_OF_SESSION(date) },
  ];
  return userCall(c, userid, customId, framed, { body: { max_tokens: INGEST_MAX_TOKENS }, tags: ['ingestion'] });
}

/** One question, asked alone and judged. */
function questionDraft(
  c: BenchmarkContext,
  userid: string,
  customId: string,
  question: string,
  judge: { answer?: string; rubric?: string; kind: JudgeKind },
  tags: string[],
  date?: string,
): RequestDraft {
  const messages = [
    ...(date ? [{ role: 'system', content: `Today is ${date}.` }] : []),
    { role: 'user', content: question },
  ];
  return userCall(c, userid, customId, messages, {
    expect: { judge: { ...judge, ...(c.judgeModel ? { model: c.judgeModel } : {}) } },
    tags,
  });
}

const wanted = (c: BenchmarkContext, tags: string[]) => c.types.length === 0 || tags.some((t) => c.types.includes(t));

/** A session's framing messages around its turns: its date before, its end after. */
const FRAMING = 2;

/**
 * The bounds an item's calls obey, as the lines and scripts they stand for do: at most LIMITS.turns calls (its
 * sessions and questions, as a script's turns), each session's call at most LIMITS.messages messages and
 * LIMITS.lineBytes of text. An item past one is a bad line naming the field.
 */
function checkCalls(
  c: BenchmarkContext,
  sessions: { field: string; turns: { content: string }[] }[],
  questions: number,
  sessionsField: string,
): void {
  if (sessions.length + questions > LIMITS.turns)
    c.fail(
      sessionsField,
      `${sessions.length} sessions and ${questions} question(s): an instance makes at most ${LIMITS.turns} calls, as a script has at most ${LIMITS.turns} turns`,
    );
  for (const s of sessions) {
    if (s.turns.length + FRAMING > LIMITS.messages)
      c.fail(
        s.field,
        `${s.turns.length} turns: a session's call carries at most ${LIMITS.messages} messages (${LIMITS.messages - FRAMING} turns, its date and its end)`,
      );
    const bytes = s.turns.reduce((n, t) => n + Buffer.byteLength(t.content), 0);
    if (bytes > LIMITS.lineBytes)
      c.fail(s.field, `${bytes} bytes of turns: a session's call carries at most ${LIMITS.lineBytes}, as a line does`);
  }
}

/** A LongMemEval instance: its sessions, then its question. None when its type is not asked for. */
export function longMemEvalDrafts(obj: Record<string, unknown>, c: BenchmarkContext): RequestDraft[] {
  const x = c.check(longMemEval, obj);
  if (x.haystack_dates.length !== x.haystack_sessions.length)
    c.fail(
      'haystack_dates',
      `${x.haystack_dates.length} dates for ${x.haystack_sessions.length} sessions: each session needs its date`,
    );
  checkCalls(
    c,
    x.haystack_sessions.map((turns, i) => ({ field: `haystack_sessions.${i}`, turns })),
    1,
    'haystack_sessions',
  );
  const abstention = x.question_id.endsWith('_abs');
  const tags = abstention ? [x.question_type, 'abstention'] : [x.question_type];
  if (!wanted(c, tags)) return [];
  const userid = c.userid(`longmemeval:${x.question_id}`);
  const n = x.haystack_sessions.length;
  const sessions = x.haystack_sessions.map((s, i) =>
    sessionDraft(
      c,
      userid,
      `${x.question_id}/session-${i + 1}`,
      x.haystack_dates[i]!,
      `session ${i + 1} of ${n}${x.haystack_session_ids?.[i] ? `: ${x.haystack_session_ids[i]}` : ''}`,
      s.map((t) => ({ role: t.role === 'assistant' ? 'assistant' : 'user', content: t.content })),
    ),
  );
  const kind = longMemEvalKind(x.question_type, abstention);
  const judge = kind === 'preference' ? { rubric: x.answer, kind } : { answer: x.answer, kind };
  return [...sessions, questionDraft(c, userid, x.question_id, x.question, judge, tags, x.question_date)];
}

/** The sessions of a LoCoMo conversation, in order: session_1, session_2, ... */
function locomoSessions(conversation: Record<string, unknown>): { n: number; turns: unknown; date: string }[] {
  const sessions: { n: number; turns: unknown; date: string }[] = [];
  for (const [key, turns] of Object.entries(conversation)) {
    const m = /^session_(\d+)$/.exec(key);
    if (m && Array.isArray(turns)) {
      const date = conversation[`${key}_date_time`];
      sessions.push({ n: Number(m[1]), turns, date: typeof date === 'string' ? date : 'an unknown date' });
    }
  }
  return sessions.sort((a, b) => a.n - b.n);
}

/** A LoCoMo sample: its sessions (the first speaker as the user), then each of its questions asked for. */
export function locomoDrafts(obj: Record<string, unknown>, c: BenchmarkContext): RequestDraft[] {
  const x = c.check(locomo, obj);
  const questions = x.qa
    .map((q, i) => ({ q, i, tag: LOCOMO_CATEGORIES[q.category]! }))
    .filter(({ tag }) => wanted(c, [tag]));
  if (questions.length === 0) return [];
  const userid = c.userid(`locomo:${x.sample_id}`);
  const sessions = locomoSessions(x.conversation).map((s) => {
    const field = `conversation.session_${s.n}`;
    const turns = c.check(z.array(locomoTurn), s.turns, field);
    return { ...s, field, turns: turns.map((t) => ({ ...t, content: t.text })) };
  });
  checkCalls(c, sessions, questions.length, 'conversation');
  const ingest = sessions.map((s) => {
    const turns = s.turns;
    return sessionDraft(
      c,
      userid,
      `${x.sample_id}/session-${s.n}`,
      s.date,
      `session ${s.n} of ${sessions.length}, between ${x.conversation.speaker_a} and ${x.conversation.speaker_b}`,
      turns.map((t) => ({
        role: t.speaker === x.conversation.speaker_a ? 'user' : 'assistant',
        content: `${t.speaker}: ${t.text}${t.blip_caption ? ` [shares a photo: ${t.blip_caption}]` : ''}`,
      })),
    );
  });
  const asked = questions.map(({ q, i, tag }) => {
    const judge =
      q.category === 5
        ? {
            answer: q.answer ?? 'Not mentioned in the conversation',
            ...(q.adversarial_answer ? { rubric: `A misleading answer: ${q.adversarial_answer}` } : {}),
            kind: 'adversarial' as const,
          }
        : { answer: q.answer ?? '', kind: q.category === 2 ? ('temporal' as const) : ('default' as const) };
    return questionDraft(c, userid, `${x.sample_id}/qa-${i + 1}`, q.question, judge, [tag]);
  });
  return [...ingest, ...asked];
}
