import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startApiService, type ApiService } from '../src/cli/api-service.js';
import { getUsage, readBatchRequests } from '../src/shared/batches/read-store.js';
import { runCli, testLogger, waitForBatch } from './helpers/test-env.js';
import { useWorld } from './helpers/in-process-worker.js';

/** USD per 1M tokens: whole nano-dollars per token, so the figure below is exact. */
const PRICES = {
  'plain-model': { input: 1, cached_input: 0.5, output: 4 },
  'deep-reasoner': { input: 2, cached_input: 0.25, output: 8 },
};
const TOKEN = 'report-token';

describe('cost and reports', () => {
  const w = useWorld({ latencyMs: 2 });
  let api: ApiService;
  let pricesFile: string;

  beforeEach(async () => {
    pricesFile = join(mkdtempSync(join(tmpdir(), 'chatq-prices-')), 'prices.json');
    writeFileSync(pricesFile, JSON.stringify(PRICES));
    api = await startApiService(w.env.config({ CHATQ_API_TOKENS: TOKEN }), testLogger(), 0);
  });
  afterEach(async () => {
    await api.close();
  });

  it('bills cached and reasoning tokens exactly, counts unpriced models, and the CLI report matches the API', async () => {
    const lines = [
      // Full-history scripts resend earlier turns: the upstream reports them as cached prompt tokens.
      {
        script_id: 's1',
        user: 'ann',
        model: 'plain-model',
        history: 'full',
        turns: ['My name is Ann.', 'I live in Oslo.', 'What is my name?'],
      },
      {
        script_id: 's2',
        user: 'bo',
        model: 'deep-reasoner',
        history: 'full',
        turns: ['I like tea.', 'What do I like?'],
      },
      { custom_id: 'free', user: 'cy', model: 'no-price-model', messages: [{ role: 'user', content: 'hello' }] },
    ].map((l) => JSON.stringify(l));
    const submitted = await w.env.submit(lines);
    await w.startWorker({ CHATQ_PRICES: pricesFile });
    await waitForBatch(w.env, submitted.batchId);

    // The hand computation, from the token counts the upstream (simulator) reported per model.
    const sim = w.sim.stats().tokensByModel;
    expect(sim['plain-model']!.cached).toBeGreaterThan(0);
    expect(sim['deep-reasoner']!.reasoning).toBeGreaterThan(0);
    const nano = (model: keyof typeof PRICES) => {
      const t = sim[model]!;
      const p = PRICES[model];
      return (t.prompt - t.cached) * p.input * 1000 + t.cached * p.cached_input * 1000 + t.completion * p.output * 1000;
    };
    const usage = await getUsage(w.env.redis, w.env.keys, 'default', 'batch', submitted.batchId);
    expect(usage.cost_nano).toBe(nano('plain-model') + nano('deep-reasoner'));
    expect(usage.unpriced).toBe(1);
    expect(usage.cached_tokens).toBe(sim['plain-model']!.cached + sim['deep-reasoner']!.cached);
    expect(usage.reasoning_tokens).toBe(sim['deep-reasoner']!.reasoning);

    const fromApi = async (q: string) =>
      (await fetch(`${api.url}/v1/usage?${q}`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
    const env = w.env.env();
    for (const [cli, q] of [
      [['report', '--by', 'model', '--format', 'csv'], 'group_by=model&format=csv'],
      [['report', '--by', 'batch', '--format', 'csv'], 'group_by=batch&format=csv'],
      [
        ['report', '--by', 'user', '--batch', submitted.batchId, '--format', 'csv'],
        `group_by=user&batch=${submitted.batchId}&format=csv`,
      ],
    ] as const) {
      const report = await runCli([...cli], env);
      expect(report.code).toBe(0);
      expect(report.stdout).toBe(await fromApi(q));
    }
    const byModel = (await runCli(['report', '--by', 'model', '--format', 'csv'], env)).stdout.trim().split('\n');
    expect(byModel[0]).toBe(
      'model,requests,succeeded,failed,prompt_tokens,cached_tokens,completion_tokens,reasoning_tokens,total_tokens,cost_usd,unpriced,repeat_calls,repeat_cost_usd,grading_calls,grading_cost_usd',
    );
    expect(byModel.find((l) => l.startsWith('no-price-model,'))).toMatch(
      /,0\.000000000,1,0,0\.000000000,0,0\.000000000$/,
    );
    expect(byModel.find((l) => l.startsWith('plain-model,'))).toContain(
      `,${(nano('plain-model') / 1e9).toFixed(9)},0,0,`,
    );
    const table = await runCli(['report', '--by', 'model'], env);
    expect(table.stdout).toMatch(/total\s+6\s/);
  });

  it('a budget sends no call that could go past it, and cancels the rest once none fits', async () => {
    const lines = Array.from({ length: 30 }, (_, i) =>
      JSON.stringify({
        custom_id: `b${i}`,
        user: 'spender',
        model: 'plain-model',
        max_tokens: 20,
        messages: [{ role: 'user', content: `request ${i}` }],
      }),
    );
    const submitted = await w.env.submit(lines, { maxCostNano: 300_000 });
    await w.startWorker({ CHATQ_PRICES: pricesFile });
    const batch = await waitForBatch(w.env, submitted.batchId);
    expect(batch.status).toBe('cancelled');
    expect(batch.succeeded).toBeGreaterThan(0);
    expect(batch.cancelled).toBeGreaterThan(0);
    expect(batch.succeeded + batch.cancelled).toBe(30);
    // /metrics counts the refusal (chatq_budget_refusals_total: the ChatqBudgetExhausted alert).
    expect(Number(await w.env.redis.hget(w.env.keys.metrics, 'budget_refusals'))).toBeGreaterThanOrEqual(1);
    const usage = await getUsage(w.env.redis, w.env.keys, 'default', 'batch', submitted.batchId);
    expect(usage.cost_nano).toBeLessThanOrEqual(300_000);
    // One user, strictly in order: each call went only while its most costly outcome (20 reply tokens) still fit.
    const costs: number[] = [];
    for await (const r of readBatchRequests(w.env.redis, w.env.keys, submitted.batchId))
      if (r.status === 'succeeded') costs.push(r.costNano!);
    expect(costs.reduce((a, b) => a + b, 0)).toBe(usage.cost_nano);
    // ...and stopped only when the next call's bound (20 reply tokens at $4/M, a prompt under 20 tokens at $1/M) no longer fit.
    expect(usage.cost_nano).toBeGreaterThan(300_000 - (20 * 4_000 + 20 * 1_000));
  });
});
