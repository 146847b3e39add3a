import { LIMITS } from './input-limits.js';
import { contentTokens } from './token-estimate.js';

/** What a chat body may cost in tokens before it is sent: what the limiter charges and a budget reserves. */

/** The reply budget of a body: its max_tokens (or max_completion_tokens) when a sane integer, else the default. */
export function replyBound(body: Record<string, unknown>, defaultMaxTokens: number): number {
  const max = Number(body.max_completion_tokens ?? body.max_tokens ?? defaultMaxTokens);
  return Number.isInteger(max) && max > 0 ? Math.min(max, LIMITS.maxTokens) : defaultMaxTokens;
}

/** Prompt tokens a chat body will be charged, in linear time (see token-estimate.ts). */
export function estimatePromptTokens(body: Record<string, unknown>): number {
  const messages = Array.isArray(body.messages) ? body.messages : [];
  let prompt = 3;
  for (const m of messages as { content?: unknown }[]) prompt += contentTokens(m?.content) + 4;
  return prompt;
}

/** Tokens a chat body will be charged before the call: its prompt estimate plus the reply budget. */
export function estimateTokens(body: Record<string, unknown>, defaultMaxTokens: number): number {
  return estimatePromptTokens(body) + replyBound(body, defaultMaxTokens);
}
