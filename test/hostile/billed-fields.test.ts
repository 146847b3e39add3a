import { describe, expect, it } from 'vitest';
import { getUsage } from '../../src/shared/batches/read-store.js';
import { estimatePromptTokens, replyBound } from '../../src/shared/token-bounds.js';
import { billedPromptTokens } from '../../src/simulator/chat-completion.js';
import { useWorld } from '../helpers/in-process-worker.js';
import { waitFor, waitForBatch } from '../helpers/test-env.js';

/** A tool whose description is `words` words long: what an agent's tool list bills on every call. */
const tool = (name: string, words: number) => ({
  type: 'function',
  function: {
    name,
    description: Array.from({ length: words }, (_, i) => `step${i % 97} of the procedure`).join(' '),
    parameters: { type: 'object', properties: { q: { type: 'string', description: 'the query' } } },
  },
});

const line = (i: number, fields: Record<string, unknown>) =>
  JSON.stringify({
    custom_id: `r${i}`,
    user: `billed-${i}`,
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: `hello ${i}` }],
    max_tokens: 20,
    ...fields,
  });

describe('token bounds count every field the upstream bills', () => {
  const w = useWorld({ latencyMs: 20 });

  it('the prompt bound is at least what the upstream bills for tools, functions, response_format, images, audio and unknown fields, and the reply bound counts n and prediction', () => {
    const image = { type: 'image_url', image_url: { url: `data:image/png;base64,${'A'.repeat(2_000)}` } };
    const bodies: Record<string, unknown>[] = [
      { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], tools: [tool('a', 2_000), tool('b', 50)] },
      { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], functions: [tool('f', 500).function] },
      {
        model: 'gpt-4o-mini',
        messages: [{ role: 'user', content: 'hi' }],
        response_format: { type: 'json_schema', json_schema: { name: 's', schema: tool('s', 800).function } },
      },
      { model: 'gpt-4o-mini', messages: [{ role: 'user', content: [{ type: 'text', text: 'look' }, image, image] }] },
      {
        model: 'gpt-4o-mini',
        messages: [
          {
            role: 'user',
            content: [{ type: 'input_audio', input_audio: { data: 'UklGR'.repeat(3_000), format: 'wav' } }],
          },
        ],
      },
      {
        model: 'gpt-4o-mini',
        messages: [{ role: 'user', content: 'hi' }],
        house_context: { notes: 'x '.repeat(5_000) },
      },
      {
        model: 'gpt-4o-mini',
        messages: [
          { role: 'user', content: 'call it' },
          {
            role: 'assistant',
            content: null,
            tool_calls: [
              {
                id: 'c1',
                type: 'function',
                function: { name: 'a', arguments: '{"q":"'.concat('y '.repeat(3_000), '"}') },
              },
            ],
          },
          { role: 'tool', tool_call_id: 'c1', content: 'done' },
        ],
      },
    ];
    for (const body of bodies) {
      expect(estimatePromptTokens(body), JSON.stringify(body).slice(0, 120)).toBeGreaterThanOrEqual(
        billedPromptTokens(body),
      );
    }
    const base = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], max_tokens: 100 };
    expect(replyBound({ ...base, n: 8 }, 1024)).toBe(800);
    expect(
      replyBound({ ...base, prediction: { type: 'content', content: 'word '.repeat(300) } }, 1024),
    ).toBeGreaterThanOrEqual(400);
  });

  it('a budget holds with ~20k-token tool lists and with n: 8 (spend at most the cap)', async () => {
    const budget = 20_000_000; // $0.02
    const tools = await w.env.submit(
      Array.from({ length: 30 }, (_, i) => line(i, { tools: [tool('lookup', 4_000)] })),
      { maxCostNano: budget },
    );
    const many = await w.env.submit(
      Array.from({ length: 30 }, (_, i) => line(100 + i, { n: 8, max_tokens: 400 })),
      { maxCostNano: budget / 10 },
    );
    await w.startWorker();
    for (const [id, cap] of [
      [tools.batchId, budget],
      [many.batchId, budget / 10],
    ] as const) {
      const batch = await waitForBatch(w.env, id);
      const spent = (await getUsage(w.env.redis, w.env.keys, 'default', 'batch', id)).cost_nano;
      expect(spent, `batch ${id}`).toBeLessThanOrEqual(cap);
      expect(batch.succeeded).toBeGreaterThan(0);
      expect(batch.cancelled).toBeGreaterThan(0);
    }
  });

  it('tool lists count against the TPM limit: no sixth of the minute carries more than a sixth of it', async () => {
    // Each call bills ~6.6k tokens, nearly all of it the tool list: a sixth of 120k (what chatq lets through in any
    // 10 s) holds three of them.
    await w.env.submit(Array.from({ length: 24 }, (_, i) => line(i, { tools: [tool('lookup', 1_300)] })));
    await w.startWorker({ CHATQ_TPM: '120000' });
    await waitFor('four calls answered', async () => w.sim.stats().answered >= 4, 30_000);
    const arrivals = Object.values(w.sim.stats().arrivalsFrom)
      .flat()
      .sort((a, b) => a - b);
    // The limit holds at reservation time (Redis's clock); a call reaches the upstream a moment after its
    // reservation, a moment that varies on a busy machine (a full suite: up to a few hundred ms), so four calls
    // reserved 10 s apart can arrive a little under 10 s apart. Any 9 s of arrivals holds three at most, where tool
    // lists left out of the bound would let all 24 through at once.
    const busiestNineSeconds = Math.max(...arrivals.map((t) => arrivals.filter((u) => u >= t && u < t + 9_000).length));
    expect(busiestNineSeconds, JSON.stringify(arrivals.map((t) => t - arrivals[0]!))).toBeLessThanOrEqual(3);
    expect(w.sim.stats().tokens.total / w.sim.stats().answered).toBeGreaterThan(6_000);
  });
});
