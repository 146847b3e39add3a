import { costNano, findPrice, type PriceTable } from '../shared/usage/pricing.js';
import type { RequestDraft } from '../shared/request-record.js';
import { estimatePromptTokens, replyBound } from '../shared/token-bounds.js';

/** What bounds a batch's duration: the request or token rate, the calls in flight, or one user's turns in a row. */
export type DurationBound = 'rpm' | 'tpm' | 'concurrency' | 'chain';

/** What the estimate assumes about where the batch will run. */
export interface EstimateSettings {
  rpm: number;
  tpm: number;
  modelLimits: Record<string, { rpm?: number; tpm?: number }>;
  /** Calls in flight, all workers together. */
  concurrency: number;
  /** One call's latency at the upstream (ms). */
  latencyMs: number;
  /** The reply budget of a body without max_tokens. */
  defaultMaxTokens: number;
  /** The fraction of each rate-limit window kept free (CHATQ's limiter keeps 1 %). */
  headroom: number;
  prices: PriceTable;
  /** The completion tokens a request of this model really used in earlier batches, on average (none: unknown). */
  observedCompletion: (model: string) => number | undefined;
}

export interface BatchEstimate {
  requests: number;
  users: number;
  /** The user with the most requests: their turns run one after another. */
  longestChain: { requests: number; gapMs: number };
  promptTokens: number;
  /** Expected (what the model used before, within max_tokens; max_tokens when nothing is known) and at the most. */
  completionTokens: { expected: number; atMost: number };
  /** nano-USD: replies of no tokens, the expected replies, and every reply at its max_tokens. */
  costNano: { low: number; expected: number; high: number };
  /** Requests of models the price map does not know (their cost is not in the range). */
  unpriced: number;
  durationMs: number;
  binds: DurationBound;
  /** The time each bound alone would take (ms; 0 when it does not apply). */
  boundsMs: Record<DurationBound, number>;
}

interface ModelTotals {
  requests: number;
  /** Tokens the limiter counts: prompt plus expected reply. */
  tokens: number;
}

/** A "full" history conversation so far: what its next turn is sent with. */
interface Conversation {
  promptTokens: number;
}

/**
 * Accumulates a batch's requests (in input order) into its estimate: tokens by the tokenizer (a "full" history turn
 * is sent with the earlier turns and their replies), cost at the price map, and how long it takes under each bound.
 */
export class BatchEstimator {
  private requests = 0;
  private promptTokens = 0;
  private expectedCompletion = 0;
  private boundCompletion = 0;
  private cost = { low: 0, expected: 0, high: 0 };
  private unpriced = 0;
  private readonly chains = new Map<string, { requests: number; gapMs: number }>();
  /** The longest chain a follower (a grading) ends: its user's calls up to the one it follows, and itself. */
  private longestFollower = { requests: 0, gapMs: 0 };
  private readonly models = new Map<string, ModelTotals>();
  private readonly conversations = new Map<string, Conversation>();

  constructor(private readonly settings: EstimateSettings) {}

  /**
   * Adds a request. `after`: the user whose call this one follows instead of a lane of a user (a grading follows the
   * answer it judges): it ends that user's chain one call later, and is no user of its own.
   */
  add(d: RequestDraft, after?: string): void {
    const s = this.settings;
    const own = estimatePromptTokens(d.body);
    const conversationKey = `${d.userid}\n${d.scriptId ?? ''}`;
    const earlier = d.history === 'full' && (d.turn ?? 0) > 0 ? this.conversations.get(conversationKey) : undefined;
    const history = earlier?.promptTokens ?? 0;
    const prompt = own + history;
    const bound = replyBound(d.body, s.defaultMaxTokens);
    const observed = s.observedCompletion(d.model);
    const expected = observed === undefined ? bound : Math.min(bound, Math.round(observed));
    if (d.history === 'full') this.conversations.set(conversationKey, { promptTokens: prompt - 3 + expected + 4 });
    this.requests += 1;
    this.promptTokens += prompt;
    this.expectedCompletion += expected;
    this.boundCompletion += bound;
    if (after === undefined) {
      const chain = this.chains.get(d.userid) ?? { requests: 0, gapMs: 0 };
      chain.requests += 1;
      if (chain.requests > 1) chain.gapMs += d.gapMs ?? 0;
      this.chains.set(d.userid, chain);
    } else {
      const followed = this.chains.get(after) ?? { requests: 0, gapMs: 0 };
      const ends = { requests: followed.requests + 1, gapMs: followed.gapMs };
      if (ends.requests > this.longestFollower.requests) this.longestFollower = ends;
    }
    const totals = this.models.get(d.model) ?? { requests: 0, tokens: 0 };
    totals.requests += 1;
    totals.tokens += prompt + expected;
    this.models.set(d.model, totals);
    const price = findPrice(s.prices, d.model);
    if (!price) {
      this.unpriced += 1;
      return;
    }
    const at = (completion: number, cached: number) =>
      costNano(price, {
        prompt_tokens: prompt,
        cached_tokens: cached,
        completion_tokens: completion,
        total_tokens: prompt + completion,
        reasoning_tokens: 0,
      }) ?? 0;
    // The least: no reply tokens, and the earlier turns of a conversation at the cached price (a cache may hold them).
    this.cost.low += at(0, history);
    this.cost.expected += at(expected, 0);
    this.cost.high += at(bound, 0);
  }

  result(): BatchEstimate {
    const s = this.settings;
    const longest = [...this.chains.values()].reduce((a, b) => (b.requests > a.requests ? b : a), this.longestFollower);
    const boundsMs: Record<DurationBound, number> = {
      rpm: this.rateBound('rpm'),
      tpm: this.rateBound('tpm'),
      concurrency: this.requests === 0 ? 0 : Math.ceil(this.requests / Math.max(1, s.concurrency)) * s.latencyMs,
      chain: longest.requests * s.latencyMs + longest.gapMs,
    };
    const binds = (Object.keys(boundsMs) as DurationBound[]).reduce((a, b) => (boundsMs[b] > boundsMs[a] ? b : a));
    return {
      requests: this.requests,
      users: this.chains.size,
      longestChain: longest,
      promptTokens: this.promptTokens,
      completionTokens: { expected: this.expectedCompletion, atMost: this.boundCompletion },
      costNano: { ...this.cost },
      unpriced: this.unpriced,
      durationMs: boundsMs[binds],
      binds,
      boundsMs,
    };
  }

  /**
   * How long a rate limit takes to let every request through, the slowest of its scopes (global, each model's):
   * requests are spaced 60 s / RPM apart; tokens go a sixth of the TPM limit per 10 s (the limiter's smoothing), so
   * the first sixth goes at once. The last call's latency is added.
   */
  private rateBound(kind: 'rpm' | 'tpm'): number {
    const s = this.settings;
    const usable = 1 - s.headroom;
    const scopes: { limit: number; totals: ModelTotals }[] = [
      { limit: s[kind], totals: this.total() },
      ...[...this.models].map(([model, totals]) => ({ limit: s.modelLimits[model]?.[kind] ?? 0, totals })),
    ];
    let ms = 0;
    for (const { limit, totals } of scopes) {
      if (limit <= 0 || totals.requests === 0) continue;
      const took =
        kind === 'rpm'
          ? ((totals.requests - 1) * 60_000) / (limit * usable)
          : (Math.ceil(totals.tokens / ((limit * usable) / 6)) - 1) * 10_000;
      ms = Math.max(ms, took + s.latencyMs);
    }
    return ms;
  }

  private total(): ModelTotals {
    let tokens = 0;
    for (const t of this.models.values()) tokens += t.tokens;
    return { requests: this.requests, tokens };
  }
}
