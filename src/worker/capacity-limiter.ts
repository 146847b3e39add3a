import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { countTokens } from 'gpt-tokenizer';
import type { RedisKeys } from '../shared/keys.js';
import { LuaScript } from '../shared/redis.js';

const acquireScript = new LuaScript(new URL('./acquire-capacity.lua', import.meta.url));
const settleScript = new LuaScript(new URL('./settle-capacity.lua', import.meta.url));

export interface Limits {
  rpm: number;
  tpm: number;
  modelLimits: Record<string, { rpm?: number; tpm?: number }>;
  /** Tokens assumed for the reply when the body has no max_tokens / max_completion_tokens. */
  defaultMaxTokens: number;
  /** How long a credentials probe may take before another worker may probe (the call timeout). */
  timeoutMs: number;
  /** Fraction of each window left unused, to absorb clock and network jitter (default 1%). */
  headroom?: number;
}

export interface Reservation {
  member: string;
  estimate: number;
  model: string;
  /** This call proves the credentials for everyone (the first call, or the first after a pause). */
  probe: boolean;
}

/** How stale the cached pause/credentials state may be in a process without RPM/TPM limits. */
const GATE_MS = 200;


/** Tokens a chat body will be charged before the call: its messages through the tokenizer, plus the reply budget. */
export function estimateTokens(body: Record<string, unknown>, defaultMaxTokens: number): number {
  const messages = Array.isArray(body.messages) ? body.messages : [];
  let prompt = 3;
  for (const m of messages as { content?: unknown }[]) {
    const content = typeof m.content === 'string' ? m.content : JSON.stringify(m.content ?? '');
    prompt += countTokens(content) + 4;
  }
  const max = Number(body.max_completion_tokens ?? body.max_tokens ?? defaultMaxTokens);
  return prompt + (Number.isFinite(max) && max > 0 ? max : defaultMaxTokens);
}

/**
 * Global request and token limits, shared by every worker process through Redis, plus the pauses every worker
 * honours (after a 429, or while the queue is paused). Waiting here is not an attempt: nothing has been sent.
 */
export class CapacityLimiter {
  private counter = 0;
  /** Without RPM/TPM limits, the only checks are pauses and proven credentials: read at most every GATE_MS. */
  private gate: { readAt: number; open: boolean } = { readAt: 0, open: false };
  private gateRead: Promise<boolean> | undefined;
  /** Aborted when the worker stops: waits end at once and their requests go back to the queue. */
  private readonly stopping = new AbortController();

  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    private readonly limits: Limits,
    private readonly owner: string,
  ) {}

  private scopeKeys(scope: string): string[] {
    const p = this.keys.prefix;
    return [`${p}:limit:${scope}:rpm`, `${p}:limit:${scope}:tpm-log`, `${p}:limit:${scope}:tpm`];
  }

  private modelLimit(model: string) {
    return this.limits.modelLimits[model] ?? {};
  }

  private limited(model: string): boolean {
    const m = this.modelLimit(model);
    return this.limits.rpm > 0 || this.limits.tpm > 0 || (m.rpm ?? 0) > 0 || (m.tpm ?? 0) > 0;
  }

  /** Open when credentials are proven and nothing is paused; cached for GATE_MS (changes made here apply at once). */
  private async gateOpen(): Promise<boolean> {
    if (Date.now() - this.gate.readAt <= GATE_MS) return this.gate.open;
    this.gateRead ??= (async () => {
      const k = this.keys;
      const [paused, proven, pauseLeft] = (await this.redis.multi().exists(k.pauseReason).exists(k.credentialsProven).pttl(k.rateLimitPause).exec())!.map(([, v]) => v as number);
      this.gate = { readAt: Date.now(), open: paused === 0 && proven === 1 && pauseLeft! <= 0 };
      this.gateRead = undefined;
      return this.gate.open;
    })();
    return this.gateRead;
  }

  private closeGate(): void {
    this.gate = { readAt: 0, open: false };
  }

  /** Ends every wait: calls not yet made give their requests back (see acquire). */
  stop(): void {
    this.stopping.abort();
  }

  /**
   * Waits until the call may go; 'paused' when the queue was paused meanwhile or the worker is stopping
   * (the request goes back to the queue, no attempt spent).
   */
  async acquire(model: string, body: Record<string, unknown>): Promise<Reservation | 'paused'> {
    if (this.stopping.signal.aborted) return 'paused';
    if (!this.limited(model) && (await this.gateOpen())) return { member: '', estimate: 0, model, probe: false };
    const m = this.modelLimit(model);
    const charged = this.limits.tpm > 0 || (m.tpm ?? 0) > 0;
    const estimate = charged ? estimateTokens(body, this.limits.defaultMaxTokens) : 0;
    const member = `${this.owner}:${++this.counter}`;
    const k = this.keys;
    const keys = [k.rateLimitPause, k.pauseReason, k.credentialsProven, k.credentialsProbe, ...this.scopeKeys('global'), ...this.scopeKeys(`model:${model}`)];
    const args = [member, estimate, this.limits.headroom ?? 0.01, this.limits.rpm, this.limits.tpm, m.rpm ?? 0, m.tpm ?? 0, this.limits.timeoutMs + 5_000];
    const { signal } = this.stopping;
    while (!signal.aborted) {
      const [state, waitMs] = (await acquireScript.run(this.redis, keys, args)) as [number, number];
      if (state === -1) return 'paused';
      if (waitMs > 0) await sleep(state > 0 ? waitMs : waitMs + Math.random() * 50, undefined, { signal }).catch(() => undefined);
      if (signal.aborted) {
        // A probe given up must not keep the others waiting for its lease.
        if (state === 2) await this.redis.del(k.credentialsProbe);
        break;
      }
      if (state > 0) return { member, estimate, model, probe: state === 2 };
    }
    return 'paused';
  }

  /** After the call: the real token count replaces the estimate; a successful probe proves the credentials. */
  async settle(r: Reservation, actualTokens: number, succeeded: boolean): Promise<void> {
    if (r.probe) {
      if (succeeded) await this.redis.multi().set(this.keys.credentialsProven, '1').del(this.keys.credentialsProbe).exec();
      else await this.redis.del(this.keys.credentialsProbe);
    }
    if (r.estimate === 0) return;
    const keys = [this.scopeKeys('global')[2]!];
    if ((this.modelLimit(r.model).tpm ?? 0) > 0) keys.push(this.scopeKeys(`model:${r.model}`)[2]!);
    await settleScript.run(this.redis, keys, [r.member, actualTokens]);
  }

  /** The credentials failed (401, no balance...): the next call after a resume is a probe again. */
  async distrustCredentials(): Promise<void> {
    this.closeGate();
    await this.redis.del(this.keys.credentialsProven, this.keys.credentialsProbe);
  }

  /** Holds every worker's next call for `ms` (the upstream said 429). */
  async pauseFor(ms: number): Promise<void> {
    this.closeGate();
    const [seconds, micros] = await this.redis.time();
    const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
    await this.redis.set(this.keys.rateLimitPause, String(now + ms), 'PX', ms + 1000);
  }
}
