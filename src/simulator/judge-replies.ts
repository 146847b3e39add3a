/** A chat message as the simulator reads one. */
interface ChatMessage {
  role?: unknown;
  content?: unknown;
}

/**
 * The simulator as a judge (expect.judge): a grading call's prompt holds the reference and the reply in tags
 * (shared/judge-prompts.ts); the simulator answers the judge's JSON deterministically: pass when every word of the
 * reference is in the reply (an abstention or adversarial question: when the reply says it does not know). A
 * reference or rubric holding "[simulator: not json]" gets prose instead of JSON (tests of an unreadable judge),
 * "[simulator: quote]" prose that quotes the reply (a judge that declines to grade), and "[simulator: fail then quote]"
 * a failing verdict followed by the reply quoted (a judge that explains itself).
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

/** The judge's answer to a grading call, or undefined when the call is not one. */
export function judgeReply(messages: ChatMessage[]): string | undefined {
  const system = textOf(messages.find((m) => m.role === 'system'));
  if (!system.startsWith('You grade')) return undefined;
  const prompt = textOf([...messages].reverse().find((m) => m.role === 'user'));
  const reference = tagged(prompt, 'reference');
  const reply = fencedReply(prompt);
  if (reference === undefined || reply === undefined) return undefined;
  const asked = `${reference} ${tagged(prompt, 'rubric') ?? ''}`;
  if (asked.includes('[simulator: not json]')) return 'The reply looks fine to me.';
  if (asked.includes('[simulator: quote]')) return `I would rather not grade this. The reply reads: ${reply}`;
  if (asked.includes('[simulator: fail then quote]'))
    return `${JSON.stringify({ pass: false, score: 0, reason: 'it gives another answer' })}\nThe reply was: ${reply}`;
  if (/cannot be answered|never happened/.test(system)) {
    const pass = /\b(?:don't|do not) know\b|\bnot mentioned\b|\bnever mentioned\b/i.test(reply);
    return JSON.stringify({ pass, score: pass ? 1 : 0, reason: pass ? 'it abstains' : 'it answers' });
  }
  // Its own replies end with their call number ("(reply 3)"): not part of the answer.
  const said = new Set(contentWords(reply.replace(/\(reply \d+\)\s*$/, '')));
  // A rubric stands for the reference when there is none (a preference question).
  const words = contentWords(reference.trim() ? reference : (tagged(prompt, 'rubric') ?? ''));
  const missing = words.filter((w) => !said.has(w));
  const score = words.length ? (words.length - missing.length) / words.length : 1;
  return JSON.stringify({
    pass: missing.length === 0,
    score: Math.round(score * 100) / 100,
    reason: missing.length ? `the reply lacks: ${missing.slice(0, 5).join(', ')}` : 'the reply gives the reference',
  });
}
