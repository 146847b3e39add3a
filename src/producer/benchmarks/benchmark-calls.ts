import type { z } from 'zod';
import { LIMITS } from '../../shared/input-limits.js';
import type { Grader } from '../../shared/graders/judges.js';
import type { RequestDraft } from '../../shared/request-record.js';
import { inTimeOrder } from './session-order.js';

/**
 * The calls a memory benchmark's item makes, whatever the benchmark: its sessions, ingested first in time order, one
 * call per session carrying its turns as they were recorded (assistant turns too) after a system message with its
 * date and nothing else of the file (no ids, flags, evidence, answers or categories reach the upstream); then its
 * questions, asked alone as the benchmark's harness asks them, graded as the graders chosen grade them.
 */

/** What the parser gives a benchmark item: how to check a part, and the request fields every call shares. */
export interface BenchmarkContext {
  check<S extends z.ZodType>(schema: S, value: unknown, field?: string): z.output<S>;
  fail(field: string | undefined, message: string): never;
  userid(user: string): string;
  model: string;
  line: number;
  /** Question types (tags) to keep; empty: all. */
  types: string[];
  gapMs: number | undefined;
  /** The judge: its model (--judge-model), a prompt in place of its grader's (--judge-prompt), and its grader. */
  judge: { model: string | undefined; prompt: string | undefined; grader: Grader | 'none' | undefined };
  /** LoCoMo's category 5 judged too (Mem0's J leaves it out). */
  judgeAdversarial: boolean;
}

/** A recorded session: where it is in the item (for errors), its date, and its turns as they go to the upstream. */
export interface Session {
  field: string;
  customId: string;
  date: string;
  turns: { role: string; content: string }[];
}

/** A session's framing messages around its turns: its date before, its end after. */
const FRAMING = 2;
const END_OF_SESSION = (date: string) => `[chatq: end of the recorded session of ${date}; reply "OK"]`;
/** A session's ingestion call needs no real reply. */
const INGEST_MAX_TOKENS = 16;

/** A call of the item's user: its messages and body fields, and the request fields every such call shares. */
export function userCall(
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

/**
 * The bounds an item's calls obey, as the lines and scripts they stand for do: at most LIMITS.turns calls (its
 * sessions and questions, as a script's turns), each session's call at most LIMITS.messages messages and
 * LIMITS.lineBytes of text. An item past one is a bad line naming the field.
 */
function checkCalls(c: BenchmarkContext, sessions: Session[], questions: number, sessionsField: string): void {
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

/** An item's calls: its sessions in time order (each framed by its date), then its questions; bounded (checkCalls). */
export function itemCalls(
  c: BenchmarkContext,
  userid: string,
  sessions: Session[],
  questions: RequestDraft[],
  sessionsField: string,
): RequestDraft[] {
  checkCalls(c, sessions, questions.length, sessionsField);
  const ingestion = inTimeOrder(sessions).map((s) =>
    userCall(
      c,
      userid,
      s.customId,
      [
        { role: 'system', content: `The conversation below took place on ${s.date}.` },
        ...s.turns,
        { role: 'user', content: END_OF_SESSION(s.date) },
      ],
      { body: { max_tokens: INGEST_MAX_TOKENS }, tags: ['ingestion'] },
    ),
  );
  return [...ingestion, ...questions];
}

/** Whether a question of these tags is asked for (--types). */
export const wanted = (c: BenchmarkContext, tags: string[]) =>
  c.types.length === 0 || tags.some((t) => c.types.includes(t));
