import { randomUUID } from 'node:crypto';
import { AS_TEXT, textTokens, tokenizer } from '../shared/token-estimate.js';
import { replyTo, type UserMemory } from './memory-replies.js';
import { judgeReply } from './judge-replies.js';

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

/** What the simulator bills an image: a 1024x1024 high-detail image on GPT-4o (85 + 4 tiles of 170). */
const IMAGE_BILL = 765;
/** Body fields an upstream reads as settings: everything else it passes to the model is billed as prompt tokens. */
const SETTINGS = new Set(['model', 'messages', 'userid', 'max_tokens', 'max_completion_tokens', 'n', 'prediction']);

/** A message's billed tokens: its text, its images, and any other field (tool calls, audio) as its JSON text. */
function messageTokens(m: ChatMessage & Record<string, unknown>): number {
  let sum = 4;
  if (m === null || typeof m !== 'object') return sum;
  const parts = Array.isArray(m.content) ? (m.content as Record<string, unknown>[]) : [];
  for (const p of parts) {
    if (p?.type === 'image_url') sum += IMAGE_BILL;
    else if (p?.type !== 'text') sum += textTokens(JSON.stringify(p));
  }
  sum += textTokens(textOf(m.content));
  for (const [field, value] of Object.entries(m)) {
    if (field !== 'role' && field !== 'content' && value !== null && value !== undefined)
      sum += textTokens(JSON.stringify(value));
  }
  return sum;
}

/**
 * The prompt tokens an upstream bills for a body, as a worst-case upstream would: each message, and every field that is
 * not a setting (tools, functions, response_format schemas, unknown extras) as the tokens of its JSON text.
 */
export function billedPromptTokens(body: Record<string, unknown>): number {
  const messages = Array.isArray(body.messages) ? (body.messages as (ChatMessage & Record<string, unknown>)[]) : [];
  let sum = 3;
  for (const m of messages) sum += messageTokens(m);
  for (const [field, value] of Object.entries(body)) {
    if (!SETTINGS.has(field) && value !== null && value !== undefined && typeof value === 'object')
      sum += textTokens(JSON.stringify(value));
  }
  return sum;
}

function promptTokens(body: ChatBody): number[] {
  const perMessage = body.messages.map((m) => messageTokens(m as ChatMessage & Record<string, unknown>));
  // The fields beyond the messages are billed with the first message (cached tokens are counted per message).
  const rest = billedPromptTokens(body as unknown as Record<string, unknown>) - perMessage.reduce((a, b) => a + b, 3);
  if (perMessage.length > 0) perMessage[0]! += rest;
  return perMessage;
}

const isReasoningModel = (model: string) => /^o\d|reason|think/i.test(model);

export interface ChatBody {
  model: string;
  messages: ChatMessage[];
  userid: string;
  max_tokens?: unknown;
  max_completion_tokens?: unknown;
  /** Choices asked for (each billed). */
  n?: unknown;
  /** The rest of the body, billed as the prompt (tools, response_format...). */
  [field: string]: unknown;
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
  /** How many choices the reply carries (n), each billed. */
  choices: number;
  /** It answers a grading call (a judge's verdict). */
  judge: boolean;
}

/** n: how many choices to answer (1 to 128, as OpenAI allows). */
function choiceCount(n: unknown): number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 128 ? n : 1;
}

/** The reply from the user's memory; like a real endpoint, it stops at max_tokens (finish_reason "length"). */
export function composeReply(body: ChatBody, lastUser: string, memory: UserMemory): Reply {
  const perMessage = promptTokens(body);
  const reasoning = isReasoningModel(body.model)
    ? `The user wrote ${lastUser.length} characters; answer from memory.`
    : undefined;
  const reasoningTokens = reasoning ? tokenizer().countTokens(reasoning, AS_TEXT) : 0;
  const maxTokens = Number(body.max_completion_tokens ?? body.max_tokens ?? Infinity);
  const verdict = judgeReply(body.messages);
  let replyTokens = tokenizer().encode(verdict ?? replyTo(lastUser, memory, memory.calls + 1), AS_TEXT);
  const truncated = replyTokens.length + reasoningTokens > maxTokens;
  if (truncated) replyTokens = replyTokens.slice(0, Math.max(0, maxTokens - reasoningTokens));
  const choices = choiceCount(body.n);
  return {
    perMessage,
    prompt: perMessage.reduce((a, b) => a + b, 3),
    completion: (replyTokens.length + reasoningTokens) * choices,
    choices,
    text: tokenizer().decode(replyTokens),
    reasoning,
    reasoningTokens,
    truncated,
    judge: verdict !== undefined,
  };
}

/** An OpenAI chat.completion with the reply and its usage. */
export function completionBody(model: string, now: number, r: Reply, cached: number) {
  return {
    id: `chatcmpl-${randomUUID().replace(/-/g, '').slice(0, 24)}`,
    object: 'chat.completion',
    created: Math.floor(now / 1000),
    model,
    choices: Array.from({ length: r.choices }, (_, index) => ({
      index,
      message: { role: 'assistant', content: r.text, ...(r.reasoning ? { reasoning_content: r.reasoning } : {}) },
      finish_reason: r.truncated ? 'length' : 'stop',
    })),
    usage: {
      prompt_tokens: r.prompt,
      completion_tokens: r.completion,
      total_tokens: r.prompt + r.completion,
      prompt_tokens_details: { cached_tokens: cached },
      completion_tokens_details: { reasoning_tokens: r.reasoningTokens },
    },
  };
}
