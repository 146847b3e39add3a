import type { Redis } from 'ioredis';
import { countTokens } from 'gpt-tokenizer';
import { LuaScript } from '../shared/redis.js';

const acquireScript = new LuaScript(new URL('./acquire-capacity.lua', import.meta.url));
const settleScript = new LuaScript(new URL('./settle-capacity.lua', import.meta.url));

export interface Limits {
  rpm: number;
  tpm: number;
  modelLimits: Record<string, { rpm?: number; tpm?: number }>;
  /** Tokens assumed for the reply when the body has no max_tokens / max_completion_tokens. */
  defaultMaxTokens: number;
  /** Fraction of each window left unused, to absorb clock and network jitter (default 1%). */
  headroom?: number;
}

export interface Reservation {
  member: string;
  estimate: number;
  model: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Tokens a chat body will be charged before the call: its messages through the tokenizer, plus the reply budget. */
export function estimateTokens(body: Record<string, unknown>, defaultMaxTokens: number): number {
  const messages = Array.isArray(body.messages) ? body.messages : [];
  let prompt = 0;
  for (const m of messages as { content?: unknown }[]) {
    const content = typeof m.content === 'string' ? m.content : JSON.stringify(m.content ?? '');
    prompt += countTokens(content) + 4;
  }
  const max = Number(body.max_completion_tokens ?? body.max_tokens ?? defaultMaxTokens);
  return prompt + 3 + (Number.isFinite(max) && max > 0 ? max : defaultMaxTokens);
}

/**
 * Global request and token limits, shared by every worker process through Redis. Waiting here is not an attempt:
 * the request has not been sent.
 */
export class CapacityLimiter {
  private counter = 0;
  private readonly pauseKey: string;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly limits: Limits,
    private readonly owner: string,
  ) {
    this.pauseKey = `${prefix}:limit:pause-until`;
  }

  private scopeKeys(scope: string): string[] {
    return [`${this.prefix}:limit:${scope}:rpm`, `${this.prefix}:limit:${scope}:tpm-log`, `${this.prefix}:limit:${scope}:tpm`];
  }

  private modelLimit(model: string) {
    return this.limits.modelLimits[model] ?? {};
  }

  /** Waits until the call may go, and returns what it was charged (to settle once the real usage is known). */
  async acquire(model: string, body: Record<string, unknown>): Promise<Reservation> {
    const m = this.modelLimit(model);
    const charged = this.limits.tpm > 0 || (m.tpm ?? 0) > 0;
    const estimate = charged ? estimateTokens(body, this.limits.defaultMaxTokens) : 0;
    const member = `${this.owner}:${++this.counter}`;
    const keys = [this.pauseKey, ...this.scopeKeys('global'), ...this.scopeKeys(`model:${model}`)];
    const args = [member, estimate, this.limits.headroom ?? 0.01, this.limits.rpm, this.limits.tpm, m.rpm ?? 0, m.tpm ?? 0];
    for (;;) {
      const [reserved, waitMs] = (await acquireScript.run(this.redis, keys, args)) as [number, number];
      if (waitMs > 0) await sleep(reserved ? waitMs : waitMs + Math.random() * 50);
      if (reserved) return { member, estimate, model };
    }
  }

  /** Replaces the estimate with the real token count. */
  async settle(r: Reservation, actualTokens: number): Promise<void> {
    if (r.estimate === 0) return;
    const keys = [this.scopeKeys('global')[2]!];
    if ((this.modelLimit(r.model).tpm ?? 0) > 0) keys.push(this.scopeKeys(`model:${r.model}`)[2]!);
    await settleScript.run(this.redis, keys, [r.member, actualTokens]);
  }

  /** Holds every worker's next call for `ms` (the upstream said 429). */
  async pauseFor(ms: number): Promise<void> {
    const [seconds, micros] = await this.redis.time();
    const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
    await this.redis.set(this.pauseKey, String(now + ms), 'PX', ms + 1000);
  }
}
