import { randomUUID } from 'node:crypto';
import { textTokens, tokenizer } from '../shared/token-estimate.js';
import { replyTo, type UserMemory } from './memory-replies.js';

/** What the simulator answers a chat call with: the reply from the user's memory, as an OpenAI chat.completion. */

export interface ChatMessage {
  role?: unknown;
  content?: unknown;
}

export function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content
      .map((p) => (p && typeof p === 'object' && 'text' in p && typeof p.text === 'string' ? p.text : ''))
      .join(' ');
  }
  return '';
}

function promptTokens(messages: ChatMessage[]): number[] {
  return messages.map((m) => textTokens(textOf(m.content)) + 4);
}

const isReasoningModel = (model: string) => /^o\d|reason|think/i.test(model);

export interface ChatBody {
  model: string;
  messages: ChatMessage[];
  userid: string;
  max_tokens?: unknown;
  max_completion_tokens?: unknown;
}

/** The reply a call gets: its text and token counts (the prompt's per message). */
export interface Reply {
  perMessage: number[];
  prompt: number;
  completion: number;
  text: string;
  reasoning: string | undefined;
  reasoningTokens: number;
  truncated: boolean;
}

/** The reply from the user's memory; like a real endpoint, it stops at max_tokens (finish_reason "length"). */
export function composeReply(body: ChatBody, lastUser: string, memory: UserMemory): Reply {
  const perMessage = promptTokens(body.messages);
  const reasoning = isReasoningModel(body.model)
    ? `The user wrote ${lastUser.length} characters; answer from memory.`
    : undefined;
  const reasoningTokens = reasoning ? tokenizer().countTokens(reasoning) : 0;
  const maxTokens = Number(body.max_completion_tokens ?? body.max_tokens ?? Infinity);
  let replyTokens = tokenizer().encode(replyTo(lastUser, memory, memory.calls + 1));
  const truncated = replyTokens.length + reasoningTokens > maxTokens;
  if (truncated) replyTokens = replyTokens.slice(0, Math.max(0, maxTokens - reasoningTokens));
  return {
    perMessage,
    prompt: perMessage.reduce((a, b) => a + b, 3),
    completion: replyTokens.length + reasoningTokens,
    text: tokenizer().decode(replyTokens),
    reasoning,
    reasoningTokens,
    truncated,
  };
}

/** An OpenAI chat.completion with the reply and its usage. */
export function completionBody(model: string, now: number, r: Reply, cached: number) {
  return {
    id: `chatcmpl-${randomUUID().replace(/-/g, '').slice(0, 24)}`,
    object: 'chat.completion',
    created: Math.floor(now / 1000),
    model,
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content: r.text, ...(r.reasoning ? { reasoning_content: r.reasoning } : {}) },
        finish_reason: r.truncated ? 'length' : 'stop',
      },
    ],
    usage: {
      prompt_tokens: r.prompt,
      completion_tokens: r.completion,
      total_tokens: r.prompt + r.completion,
      prompt_tokens_details: { cached_tokens: cached },
      completion_tokens_details: { reasoning_tokens: r.reasoningTokens },
    },
  };
}
