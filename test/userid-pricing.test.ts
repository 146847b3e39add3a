import { describe, expect, it } from 'vitest';
import { costNano, findPrice, loadPrices, parsePriceFile } from '../src/shared/usage/pricing.js';
import { isUuidV4, keyedUserid, legacyUserid } from '../src/shared/userid.js';
import { usageOf } from '../src/worker/run/call-results.js';

describe('userids', () => {
  it('derives the same UUID v4 from the same string, and different ones otherwise', () => {
    const a = legacyUserid('ada@example.com');
    expect(isUuidV4(a)).toBe(true);
    expect(legacyUserid('ada@example.com')).toBe(a);
    expect(legacyUserid('bob@example.com')).not.toBe(a);
    expect(legacyUserid('ada@example.com', 'run-2')).not.toBe(a);
  });
  it('keyed with a secret, the same string, project and secret give the same UUID v4; a change in any gives another', () => {
    const secret = Buffer.from('a deployment secret');
    const a = keyedUserid(secret, 'alpha', 'ada@example.com');
    expect(isUuidV4(a)).toBe(true);
    expect(keyedUserid(Buffer.from('a deployment secret'), 'alpha', 'ada@example.com')).toBe(a);
    for (const other of [
      keyedUserid(Buffer.from('another secret'), 'alpha', 'ada@example.com'),
      keyedUserid(secret, 'beta', 'ada@example.com'),
      keyedUserid(secret, 'alpha', 'ada@example.com', 'run-2'),
      keyedUserid(secret, 'alpha', 'bob@example.com'),
      legacyUserid('ada@example.com'),
    ])
      expect(other).not.toBe(a);
  });
  it('accepts only version 4', () => {
    expect(isUuidV4('9b2f7c1e-4a6d-4e8b-9c3a-1d2e3f4a5b6c')).toBe(true);
    expect(isUuidV4('123e4567-e89b-12d3-a456-426614174000')).toBe(false);
    expect(isUuidV4('9b2f7c1e4a6d4e8b9c3a1d2e3f4a5b6c')).toBe(false);
    expect(isUuidV4('user-1')).toBe(false);
  });
});

describe('cost', () => {
  const prices = loadPrices();
  it('bills cached tokens at the cached rate and reasoning tokens as output, none twice', () => {
    // gpt-4o: 2.5 input, 1.25 cached, 10 output USD per 1M tokens.
    const usage = usageOf({
      usage: {
        prompt_tokens: 1200,
        completion_tokens: 500,
        total_tokens: 1700,
        prompt_tokens_details: { cached_tokens: 1024 },
        completion_tokens_details: { reasoning_tokens: 300 },
      },
    });
    expect(usage).toEqual({
      prompt_tokens: 1200,
      completion_tokens: 500,
      total_tokens: 1700,
      cached_tokens: 1024,
      reasoning_tokens: 300,
    });
    // (1200-1024)*2.5e3 + 1024*1.25e3 + 500*10e3 nano-USD
    expect(costNano(findPrice(prices, 'gpt-4o'), usage)).toBe(176 * 2500 + 1024 * 1250 + 500 * 10_000);
  });
  it('prices 302.AI add-on suffixes as their base model and leaves unknown models unpriced', () => {
    expect(findPrice(prices, 'gpt-4o-mini-web-search')).toEqual(findPrice(prices, 'gpt-4o-mini'));
    const usage = { prompt_tokens: 10, completion_tokens: 10, total_tokens: 20, cached_tokens: 0, reasoning_tokens: 0 };
    expect(costNano(findPrice(prices, 'some-new-model'), usage)).toBeUndefined();
  });
  it('reads LiteLLM price files', () => {
    const table = parsePriceFile(
      {
        'my-model': { input_cost_per_token: 3e-6, output_cost_per_token: 1.5e-5, cache_read_input_token_cost: 3e-7 },
        sample_spec: { max_tokens: 1 },
      },
      'litellm.json',
    );
    expect(table.get('my-model')).toEqual({ input: 3, cachedInput: 0.3, output: 15 });
    expect(table.has('sample_spec')).toBe(false);
  });
});
