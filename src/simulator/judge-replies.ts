/** A chat message as the simulator reads one. */
interface ChatMessage {
  role?: unknown;
  content?: unknown;
}

/**
 * The simulator as a judge (expect.judge), for each grader's prompt (shared/graders/): chatq's (the reference in tags,
 * the reply in its fence; a JSON verdict), LongMemEval's ("yes"/"no") and Mem0's (a JSON label). Deterministic: right
 * when every word of the reference is in the reply (an abstention or adversarial question: when the reply says it
 * does not know). For chatq's, a reference or rubric holding "[simulator: not json]" gets prose instead of JSON
 * (tests of an unreadable judge), "[simulator: quote]" prose that quotes the reply (a judge that declines to grade),
 * and "[simulator: fail then quote]" a failing verdict followed by the reply quoted (a judge that explains itself).
 */

const STOP = new Set(['a', 'an', 'the', 'of', 'to', 'in', 'on', 'at', 'and', 'or', 'is', 'was', 'it', 'for', 'with']);

/** The words of a text that carry meaning, lowercased. */
export function contentWords(text: string): string[] {
  return (text.toLowerCase().match(/[\p{L}\d]+/gu) ?? []).filter((w) => (w.length > 1 || /\d/.test(w)) && !STOP.has(w));
}

const tagged = (text: string, tag: string) => new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`).exec(text)?.[1];
/** The reply of a grading prompt, between its fence's tags ("reply-<id>"). */
function fencedReply(text: string): string | undefined {
  const open = /<reply-([0-9a-f]{16})>/.exec(text);
  if (!open) return undefined;
  const end = text.lastIndexOf(`</reply-${open[1]}>`);
  return end < open.index ? undefined : text.slice(open.index + open[0].length, end);
}

const textOf = (m: ChatMessage | undefined) => (typeof m?.content === 'string' ? m.content : '');

/** The text between two markers of a prompt (the first after `from`, up to the next `to`), or undefined. */
function between(text: string, from: string, to: string): string | undefined {
  const start = text.indexOf(from);
  if (start < 0) return undefined;
  const end = text.indexOf(to, start + from.length);
  return end < 0 ? undefined : text.slice(start + from.length, end);
}

/** A reply that declines: it does not know, or says it was never mentioned. */
const declines = (reply: string) => /\b(?:don't|do not) know\b|\bnot mentioned\b|\bnever mentioned\b/i.test(reply);

/** Whether the reply gives every word of the reference; the share of them it gives. */
function givesReference(reference: string, reply: string): { pass: boolean; score: number; missing: string[] } {
  // Its own replies end with their call number ("(reply 3)"): not part of the answer.
  const said = new Set(contentWords(reply.replace(/\(reply \d+\)\s*$/, '')));
  const words = contentWords(reference);
  const missing = words.filter((w) => !said.has(w));
  return {
    pass: missing.length === 0,
    score: words.length ? (words.length - missing.length) / words.length : 1,
    missing,
  };
}

/** The judge's answer to a grading call (chatq's, LongMemEval's or Mem0's prompt), or undefined when it is none. */
export function judgeReply(messages: ChatMessage[]): string | undefined {
  const system = textOf(messages.find((m) => m.role === 'system'));
  const prompt = textOf([...messages].reverse().find((m) => m.role === 'user'));
  if (system.startsWith('You grade')) return chatqVerdict(system, prompt);
  if (prompt.startsWith('I will give you ')) return longMemEvalVerdict(prompt);
  if (prompt.includes('Your task is to label an answer to a question as')) return mem0Verdict(prompt);
  return undefined;
}

/** LongMemEval's judge: "yes" or "no" (evaluate_qa.py's prompts). */
function longMemEvalVerdict(prompt: string): string | undefined {
  const reply = between(prompt, '\n\nModel Response: ', '\n\n');
  if (reply === undefined) return undefined;
  if (prompt.startsWith('I will give you an unanswerable question')) return declines(reply) ? 'Yes.' : 'No.';
  const reference =
    between(prompt, '\n\nCorrect Answer: ', '\n\nModel Response: ') ??
    between(prompt, '\n\nRubric: ', '\n\nModel Response: ');
  if (reference === undefined) return undefined;
  return givesReference(reference, reply).pass ? 'Yes.' : 'No.';
}

/** Mem0's judge: {"label": "CORRECT" | "WRONG"} (llm_judge.py's prompt). */
function mem0Verdict(prompt: string): string | undefined {
  // The prompt's example has a gold answer too: the fields are those after it.
  const real = prompt.slice(prompt.indexOf('for the real question:'));
  const gold = between(real, '\nGold answer: ', '\nGenerated answer: ');
  const reply = between(real, '\nGenerated answer: ', '\n\nFirst, provide');
  if (gold === undefined || reply === undefined) return undefined;
  const correct = /^not mentioned/i.test(gold) ? declines(reply) : givesReference(gold, reply).pass;
  return JSON.stringify({ label: correct ? 'CORRECT' : 'WRONG' });
}

/** chatq's judge: its JSON verdict (graders/chatq-judge.ts), or the test behaviours a reference asks for. */
function chatqVerdict(system: string, prompt: string): string | undefined {
  const reference = tagged(prompt, 'reference');
  const reply = fencedReply(prompt);
  if (reference === undefined || reply === undefined) return undefined;
  const asked = `${reference} ${tagged(prompt, 'rubric') ?? ''}`;
  if (asked.includes('[simulator: not json]')) return 'The reply looks fine to me.';
  if (asked.includes('[simulator: quote]')) return `I would rather not grade this. The reply reads: ${reply}`;
  if (asked.includes('[simulator: fail then quote]'))
    return `${JSON.stringify({ pass: false, score: 0, reason: 'it gives another answer' })}\nThe reply was: ${reply}`;
  if (/cannot be answered|never happened/.test(system)) {
    const pass = declines(reply);
    return JSON.stringify({ pass, score: pass ? 1 : 0, reason: pass ? 'it abstains' : 'it answers' });
  }
  // A rubric stands for the reference when there is none (a preference question).
  const { pass, score, missing } = givesReference(
    reference.trim() ? reference : (tagged(prompt, 'rubric') ?? ''),
    reply,
  );
  return JSON.stringify({
    pass,
    score: Math.round(score * 100) / 100,
    reason: missing.length ? `the reply lacks: ${missing.slice(0, 5).join(', ')}` : 'the reply gives the reference',
  });
}
