import { describe, expect, it } from 'vitest';
import { Readable } from 'node:stream';
import { BatchEstimator, type EstimateSettings } from '../src/producer/batch-estimate.js';
import { estimateInput } from '../src/producer/estimate-input.js';
import type { RequestDraft } from '../src/shared/request-record.js';
import { estimatePromptTokens } from '../src/shared/token-bounds.js';
import { loadPrices } from '../src/shared/usage/pricing.js';

const settings = (over: Partial<EstimateSettings> = {}): EstimateSettings => ({
  rpm: 0,
  tpm: 0,
  modelLimits: {},
  concurrency: 10,
  latencyMs: 1_000,
  defaultMaxTokens: 1_000,
  headroom: 0.01,
  prices: loadPrices(),
  observedCompletion: () => undefined,
  ...over,
});

const draft = (over: Partial<RequestDraft> & { content?: string }): RequestDraft => ({
  customId: 'c',
  userid: 'u1',
  model: 'gpt-4o-mini',
  body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: over.content ?? 'hello there' }], max_tokens: 100 },
  line: 1,
  onFailure: 'continue',
  history: 'memory',
  ...over,
});

describe('batch estimate', () => {
  it('replies are expected at what the model used before, within max_tokens; the cost range spans none to max_tokens', () => {
    const known = new BatchEstimator(settings({ observedCompletion: (m) => (m === 'gpt-4o-mini' ? 40 : undefined) }));
    known.add(draft({}));
    const e = known.result();
    expect(e.completionTokens).toEqual({ expected: 40, atMost: 100 });
    expect(e.costNano.low).toBeLessThan(e.costNano.expected);
    expect(e.costNano.expected).toBeLessThan(e.costNano.high);
    const unknown = new BatchEstimator(settings());
    unknown.add(draft({}));
    expect(unknown.result().completionTokens.expected).toBe(100);
  });

  it('a "full" history turn is sent with the earlier turns and their replies', () => {
    const estimator = new BatchEstimator(settings());
    const own = estimatePromptTokens(draft({}).body);
    for (const turn of [0, 1, 2]) estimator.add(draft({ history: 'full', turn, scriptId: 's1' }));
    // Turn 1 carries turn 0's message and reply (100 tokens, 4 each of overhead); turn 2 carries both earlier turns.
    const perTurn = own - 3 + 100 + 4;
    expect(estimator.result().promptTokens).toBe(own + (own + perTurn) + (own + 2 * perTurn));
  });

  it("names what binds: a model's own rpm, the longest user's chain with its turn gaps", () => {
    const limited = new BatchEstimator(settings({ modelLimits: { 'gpt-4o-mini': { rpm: 60 } }, rpm: 6_000 }));
    for (let i = 0; i < 11; i++) limited.add(draft({ userid: `u${i}` }));
    const byModel = limited.result();
    expect(byModel.binds).toBe('rpm');
    expect(byModel.boundsMs.rpm).toBeCloseTo((10 * 60_000) / (60 * 0.99) + 1_000, 0);
    const chained = new BatchEstimator(settings());
    for (let i = 0; i < 5; i++) chained.add(draft({ gapMs: 2_000 }));
    const chain = chained.result();
    expect(chain.longestChain).toEqual({ requests: 5, gapMs: 8_000 });
    expect(chain).toMatchObject({ binds: 'chain', durationMs: 5 * 1_000 + 8_000 });
  });

  it("a grading call counts as a request after the answer it judges: it ends that user's chain, and is no user", async () => {
    const line = (user: string, content: string, judged: boolean) =>
      JSON.stringify({
        user,
        model: 'gpt-4o-mini',
        messages: [{ role: 'user', content }],
        ...(judged ? { expect: { judge: { answer: 'Ada' } } } : {}),
      });
    const input = [
      line('ada', 'one', false),
      line('ada', 'two', false),
      line('ada', 'name?', true),
      line('bo', 'hi', true),
    ];
    const { estimate } = await estimateInput(
      () => Readable.from([input.join('\n')]),
      { source: 'judged.jsonl' },
      settings(),
      () => undefined,
    );
    expect(estimate).toMatchObject({ requests: 6, users: 2, longestChain: { requests: 4 } });
  });
});
