import { LIMITS } from './input-limits.js';
import { contentTokens, jsonTokens } from './token-estimate.js';

/**
 * What a chat body may cost in tokens before it is sent: what the limiter charges and a budget reserves. Every field
 * the upstream bills counts: the messages (text, images, audio, tool calls), tools and functions, response_format
 * schemas and any other field passed through (as the tokens of its JSON text, which no upstream's rendering of it
 * exceeds by more than a few tokens of framing), and each of the `n` replies.
 */

/** Fields the upstream reads as settings or that the reply bound counts: they are not prompt tokens. */
const NOT_PROMPT = new Set(['model', 'messages', 'userid', 'max_tokens', 'max_completion_tokens', 'n', 'prediction']);
/** Framing an upstream adds around a field it puts in the prompt (a tool list's header, a schema's wrapper). */
const FIELD_FRAMING = 16;
/** The most choices a call may ask for (OpenAI's limit on n). */
const MAX_CHOICES = 128;

/** How many replies the body asks for (n): each is billed. */
function choices(body: Record<string, unknown>): number {
  const n = body.n;
  return typeof n === 'number' && Number.isInteger(n) && n >= 1 ? Math.min(n, MAX_CHOICES) : 1;
}

/**
 * The reply budget of a body: its max_tokens (or max_completion_tokens) when a sane integer, else the default; times
 * the replies asked for (n), plus a predicted output's tokens (billed as completion tokens when rejected).
 */
export function replyBound(body: Record<string, unknown>, defaultMaxTokens: number): number {
  const max = Number(body.max_completion_tokens ?? body.max_tokens ?? defaultMaxTokens);
  const one = Number.isInteger(max) && max > 0 ? Math.min(max, LIMITS.maxTokens) : defaultMaxTokens;
  const prediction = body.prediction as { content?: unknown } | null | undefined;
  return one * choices(body) + (prediction ? contentTokens(prediction.content, body.model) : 0);
}

/** A message's tokens: its content, and every other field but the role (tool calls, a name, audio) as JSON text. */
function messageTokens(m: unknown, model: unknown): number {
  if (m === null || typeof m !== 'object') return 4;
  let sum = 4;
  for (const [field, value] of Object.entries(m)) {
    if (field === 'content') sum += contentTokens(value, model);
    else if (field !== 'role' && value !== null && value !== undefined) sum += jsonTokens(value);
  }
  return sum;
}

/** Prompt tokens a chat body will be charged, in linear time (see token-estimate.ts). */
export function estimatePromptTokens(body: Record<string, unknown>): number {
  const messages = Array.isArray(body.messages) ? body.messages : [];
  let prompt = 3;
  for (const m of messages) prompt += messageTokens(m, body.model);
  for (const [field, value] of Object.entries(body)) {
    if (NOT_PROMPT.has(field) || value === null || value === undefined) continue;
    prompt += jsonTokens(value) + (typeof value === 'object' ? FIELD_FRAMING : 0);
  }
  return prompt;
}

/** Tokens a chat body will be charged before the call: its prompt estimate plus the reply budget. */
export function estimateTokens(body: Record<string, unknown>, defaultMaxTokens: number): number {
  return estimatePromptTokens(body) + replyBound(body, defaultMaxTokens);
}
