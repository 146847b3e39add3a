import { contentWords } from './judge-replies.js';

/**
 * What the simulated endpoint "remembers" about each user and how its replies show it: facts stated in earlier
 * calls ("my name is Ada", "I live in Lyon", "I like tea") come back when asked about, as the real memory layer
 * would inject them.
 */
export interface UserMemory {
  facts: Map<string, string>;
  calls: number;
  /** The sentences its calls carried (both sides of a conversation), oldest first, bounded: what recall searches. */
  said: string[];
}

/** Sentences kept per user (older ones are forgotten). */
const MOST_SAID = 5_000;

const END = String.raw`(?=[.,!?;]|\s+and\s|\s+but\s|$)`;
const fact = (lead: string, phrase = String.raw`([\p{L}\d][\p{L}\d '-]{0,40}?)`) =>
  new RegExp(String.raw`\b${lead}\s+${phrase}${END}`, 'iu');

const FACT_PATTERNS: [RegExp, string][] = [
  [/\b[Mm]y name is ([\p{Lu}][\p{L}'-]*(?: [\p{Lu}][\p{L}'-]*)?)/u, 'name'],
  [fact('i live in'), 'city'],
  [fact('i (?:like|love)'), 'likes'],
  [fact('i work', String.raw`((?:as|at|for|in)\s+[^.,!?;]{1,40}?)`), 'work'],
  [fact(String.raw`my favou?rite ([\p{L}]+) is`), 'favourite'],
];

const QUESTIONS: [RegExp, string, (v: string) => string][] = [
  [/\bwhat(?:'s| is) my name\b|\bwho am i\b/i, 'name', (v) => `Your name is ${v}.`],
  [/\bwhere do i live\b/i, 'city', (v) => `You live in ${v}.`],
  [/\bwhat do i (?:like|love)\b/i, 'likes', (v) => `You like ${v}.`],
  [/\bwhere do i work\b|\bwhat do i do\b/i, 'work', (v) => `You work ${v}.`],
  [/\bwhat(?:'s| is) my favou?rite\b/i, 'favourite', (v) => `Your favourite ${v}.`],
];

export function newMemory(): UserMemory {
  return { facts: new Map(), calls: 0, said: [] };
}

export function learn(memory: UserMemory, text: string): void {
  for (const [re, key] of FACT_PATTERNS) {
    const m = re.exec(text);
    if (!m) continue;
    memory.facts.set(key, key === 'favourite' ? `${m[1]} is ${m[2]!.trim()}` : m[1]!.trim());
  }
}

/** Keeps the sentences of a call's messages (its conversation, as a memory layer would store it). */
export function remember(memory: UserMemory, texts: string[]): void {
  for (const text of texts)
    for (const s of text.split(/(?<=[.!?])\s+|\n+/)) if (s.trim().length > 3) memory.said.push(s.trim());
  if (memory.said.length > MOST_SAID) memory.said.splice(0, memory.said.length - MOST_SAID);
}

const DONT_KNOW = "I don't know: you never mentioned that.";

/**
 * A question no fact pattern answers, from the sentences the user's calls carried: the one sharing the most words
 * with it (the latest of equals: an update wins), or "I don't know" when none shares two.
 */
function recall(question: string, memory: UserMemory): string | undefined {
  if (!question.trim().endsWith('?') || memory.said.length === 0) return undefined;
  const asked = new Set(contentWords(question));
  let best = '';
  let most = 1;
  for (const s of memory.said) {
    // Questions asked earlier are not answers.
    if (s.endsWith('?')) continue;
    const shared = new Set(contentWords(s).filter((w) => asked.has(w))).size;
    if (shared >= most) {
      most = shared;
      best = s;
    }
  }
  return most >= 2 && best ? best : DONT_KNOW;
}

/**
 * A memory benchmark's question as its harness asks it (LongMemEval's "...Question: Q\nAnswer:", LoCoMo's "...Question:
 * Q Short answer:", a category-5 one with its options): the question, and the options, or undefined.
 */
function harnessQuestion(text: string): { question: string; options?: [string, string] } | undefined {
  const at = text.indexOf('Question: ');
  if (at < 0) return undefined;
  const end = text.endsWith('\nAnswer:') ? text.length - '\nAnswer:'.length : text.indexOf(' Short answer:', at);
  if (end < at) return undefined;
  const question = text.slice(at + 'Question: '.length, end);
  const choice = question.indexOf(' Select the correct answer: (a) ');
  if (choice < 0) return { question };
  const [a, b] = question.slice(choice + ' Select the correct answer: (a) '.length).split(' (b) ');
  return { question: question.slice(0, choice), options: [a!.trim(), (b ?? '').replace(/\.\s*$/, '')] };
}

/** A harness's question answered from memory: the recalled sentence, or (a choice) the option that says "not mentioned". */
function answerHarness(asked: { question: string; options?: [string, string] }, memory: UserMemory): string {
  const recalled = recall(asked.question.trim(), memory) ?? DONT_KNOW;
  if (!asked.options) return recalled;
  if (recalled !== DONT_KNOW) return recalled;
  return /^not mentioned/i.test(asked.options[0]) ? '(a)' : '(b)';
}

/**
 * The reply to `text`, using what `memory` holds (an empty memory for users the endpoint does not remember). A message
 * "[simulator: say X]" is answered X, as it is (tests of replies that try to grade themselves); a memory benchmark's
 * question is answered from memory, without the reply's call number.
 */
export function replyTo(text: string, memory: UserMemory, callNumber: number): string {
  const say = /^\[simulator: say ([\s\S]*)\]$/.exec(text.trim());
  if (say) return say[1]!;
  const harness = harnessQuestion(text);
  if (harness) return answerHarness(harness, memory);
  const answers: string[] = [];
  for (const [re, key, say] of QUESTIONS) {
    if (!re.test(text)) continue;
    const v = memory.facts.get(key);
    answers.push(v ? say(v) : "I don't know that yet: you haven't told me.");
  }
  const quoted = text.length > 80 ? `${text.slice(0, 77)}...` : text;
  const head = answers.length ? answers.join(' ') : (recall(text, memory) ?? `Noted: "${quoted}"`);
  return `${head} (reply ${callNumber})`;
}
