import type { Usage } from '../../shared/usage/pricing.js';
import type { AttemptEntry } from '../../shared/request-record.js';
import { classifyError, type ClassifiedError } from '../upstream/classify-error.js';
import type { StartedRequest } from '../store/request-claims.js';
import type { CallEnd } from './run-trace.js';
import { UpstreamBodyError, type UpstreamReply } from '../upstream/upstream-client.js';

/**
 * What a call and its answer say, apart from any I/O: the usage of a reply, what a call's span records, the messages
 * a turn is sent with, the error a failure is stored with, and how long to back off.
 */

export const ZERO_USAGE: Usage = {
  prompt_tokens: 0,
  completion_tokens: 0,
  total_tokens: 0,
  cached_tokens: 0,
  reasoning_tokens: 0,
};

export function usageOf(completion: Record<string, unknown>): Usage {
  const u = (completion.usage ?? {}) as Record<string, unknown>;
  const n = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? Math.round(v) : 0);
  const prompt = n(u.prompt_tokens);
  const completionTokens = n(u.completion_tokens);
  return {
    prompt_tokens: prompt,
    completion_tokens: completionTokens,
    total_tokens: n(u.total_tokens) || prompt + completionTokens,
    cached_tokens: n((u.prompt_tokens_details as Record<string, unknown> | undefined)?.cached_tokens),
    reasoning_tokens: n((u.completion_tokens_details as Record<string, unknown> | undefined)?.reasoning_tokens),
  };
}

/** When the request's current run of "cannot reach the upstream" answers began (now when it has none). */
export function outageSince(attempts: AttemptEntry[]): number {
  let since = Date.now();
  for (let i = attempts.length - 1; i >= 0 && attempts[i]!.code === 'connection_error'; i--) since = attempts[i]!.at;
  return since;
}

/** Exponential backoff with equal jitter, capped. */
export function backoffDelay(attemptsMade: number, baseMs: number, capMs = 60_000): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.max(0, attemptsMade - 1));
  return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
}

export function redact(text: string, secrets: string[]): string {
  return secrets.reduce((t, s) => (s ? t.split(s).join('[redacted]') : t), text);
}

/** The messages to send: for a "full" history turn, the earlier turns and their real replies come first. */
export function messagesFor(started: StartedRequest): Record<string, unknown>[] {
  const own = Array.isArray(started.body.messages) ? (started.body.messages as Record<string, unknown>[]) : [];
  return started.history === 'full' ? [...started.conversation, ...own] : own;
}

export function assistantMessage(completion: Record<string, unknown>): Record<string, unknown> {
  const choice = (completion.choices as { message?: Record<string, unknown> }[])[0];
  return { role: 'assistant', content: choice?.message?.content ?? '' };
}

/** What an upstream call's error is (its code, status and what to do about it). */
export const classified = (err: unknown): ClassifiedError =>
  err instanceof UpstreamBodyError ? err.classified : classifyError(err);

/** What a failed call tells its span. */
export function failedCallEnd(err: unknown): CallEnd {
  const c = classified(err);
  return { ok: false, status: c.status ?? null, code: c.code };
}

/** What a reply tells its call's span. */
export function callEnd(reply: UpstreamReply): CallEnd {
  const { completion } = reply;
  const usage = usageOf(completion);
  const choices = Array.isArray(completion.choices) ? (completion.choices as { finish_reason?: unknown }[]) : [];
  return {
    ok: true,
    status: reply.status,
    responseId: typeof completion.id === 'string' ? completion.id : undefined,
    responseModel: typeof completion.model === 'string' ? completion.model : undefined,
    inputTokens: usage.prompt_tokens,
    outputTokens: usage.completion_tokens,
    finishReasons: choices.map((c) => String(c.finish_reason ?? '')),
  };
}
