/**
 * A synthetic file in LongMemEval's published format (the real one is ~265 MB for _S): `n` instances, each a user's
 * `sessions` dated chat sessions of filler with one needle fact, and one question on it, its type taken in turn from
 * LongMemEval's (abstention every tenth). Written an instance at a time: the generator holds one.
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

function instance(i: number, sessions: number, turnChars: number) {
  const type = TYPES[i % TYPES.length]!;
  const abstention = i % 10 === 9;
  const pet = `Pet${i}`;
  const haystack = Array.from({ length: sessions }, (_, s) => [
    {
      role: 'user',
      content: s === sessions >> 1 ? `My rabbit has the name ${pet} and eats carrots.` : filler(turnChars, i + s),
    },
    { role: 'assistant', content: filler(turnChars >> 1, i * 3 + s) },
  ]);
  return {
    question_id: `synthetic-${i}${abstention ? '_abs' : ''}`,
    question_type: type,
    question: abstention ? 'What is the name of my sister?' : 'What is the name of my rabbit?',
    answer: abstention ? 'You did not mention your sister.' : pet,
    question_date: '2024/01/31 (Wed) 12:00',
    haystack_dates: haystack.map((_, s) => `2024/01/${String(1 + (s % 28)).padStart(2, '0')} (Mon) 09:00`),
    haystack_session_ids: haystack.map((_, s) => `synthetic-${i}-s${s}`),
    haystack_sessions: haystack,
    answer_session_ids: [`synthetic-${i}-s${sessions >> 1}`],
  };
}

/** Writes the file; returns its size in bytes. */
export function writeLongMemEvalFile(
  path: string,
  n: number,
  { sessions = 10, turnChars = 400 }: { sessions?: number; turnChars?: number } = {},
): number {
  const fd = openSync(path, 'w');
  let bytes = 0;
  const write = (text: string) => {
    bytes += writeSync(fd, text);
  };
  try {
    write('[');
    for (let i = 0; i < n; i++) write(`${i ? ',' : ''}${JSON.stringify(instance(i, sessions, turnChars))}`);
    write(']');
  } finally {
    closeSync(fd);
  }
  return bytes;
}
