/**
 * A synthetic file in LongMemEval's published shape (`longmemeval_s.json` is ~265 MB: 500 instances of ~50 sessions,
 * ~115k tokens each; `_m` has ~500 sessions an instance): `n` instances, each a user's `sessions` dated chat sessions
 * of `turns` turns of filler, one of them (named "answer_…", its turn flagged has_answer, as the published evidence
 * sessions are) holding the needle fact, the others named as the haystack's sources are; dates out of file order now
 * and then; one question on the needle, its type taken in turn from LongMemEval's six (abstention every tenth).
 * Written an instance at a time: the generator holds one.
 */
import { closeSync, openSync, writeSync } from 'node:fs';

const TYPES = [
  'single-session-user',
  'single-session-assistant',
  'multi-session',
  'knowledge-update',
  'temporal-reasoning',
  'single-session-preference',
];

const filler = (chars: number, seed: number) => {
  const words: string[] = [];
  for (let i = 0, n = 0; n < chars; i++) {
    const w = `topic${(i * 7 + seed) % 997}`;
    words.push(w);
    n += w.length + 1;
  }
  return `${words.join(' ')}.`;
};

export interface Shape {
  sessions?: number;
  /** Turns a session (user and assistant in turn). */
  turns?: number;
  turnChars?: number;
}

function instance(i: number, { sessions = 10, turns = 2, turnChars = 400 }: Shape) {
  const type = TYPES[i % TYPES.length]!;
  const abstention = i % 10 === 9;
  const pet = `Pet${i}`;
  const needle = sessions >> 1;
  const haystack = Array.from({ length: sessions }, (_, s) =>
    Array.from({ length: turns }, (_, t) =>
      t % 2 === 0
        ? s === needle && t === 0
          ? { role: 'user', content: `My rabbit has the name ${pet} and eats carrots.`, has_answer: true }
          : { role: 'user', content: filler(turnChars, i + s + t) }
        : { role: 'assistant', content: filler(turnChars, i * 3 + s + t) },
    ),
  );
  // Every fifth instance lists its first two sessions out of date order.
  const day = (s: number) => 1 + ((i % 5 === 0 && s < 2 ? 1 - s : s) % 28);
  return {
    question_id: `synthetic-${i}${abstention ? '_abs' : ''}`,
    question_type: type,
    question: abstention ? 'What is the name of my sister?' : 'What is the name of my rabbit?',
    answer: abstention ? 'You did not mention your sister.' : pet,
    question_date: '2024/01/31 (Wed) 12:00',
    haystack_dates: haystack.map((_, s) => `2024/01/${String(day(s)).padStart(2, '0')} (Mon) 09:00`),
    haystack_session_ids: haystack.map((_, s) => (s === needle ? `answer_synthetic${i}_${s}` : `sharegpt_${i}_${s}`)),
    haystack_sessions: haystack,
    answer_session_ids: [`answer_synthetic${i}_${needle}`],
  };
}

/** Writes the file; returns its size in bytes. */
export function writeLongMemEvalFile(path: string, n: number, shape: Shape = {}): number {
  const fd = openSync(path, 'w');
  let bytes = 0;
  const write = (text: string) => {
    bytes += writeSync(fd, text);
  };
  try {
    write('[');
    for (let i = 0; i < n; i++) write(`${i ? ',' : ''}${JSON.stringify(instance(i, shape))}`);
    write(']');
  } finally {
    closeSync(fd);
  }
  return bytes;
}

/** LongMemEval_S's shape: ~50 sessions of ~10 turns, ~115k tokens an instance (~530 KB). */
export const S_SHAPE: Shape = { sessions: 50, turns: 10, turnChars: 1_050 };
/** LongMemEval_M's: ~500 sessions an instance. */
export const M_SHAPE: Shape = { sessions: 500, turns: 10, turnChars: 1_050 };
