import { describe, expect, it } from 'vitest';
import { useApi, useWorld } from './helpers/in-process-worker.js';
import { waitForBatch } from './helpers/test-env.js';

const TOKEN = 'failure-metrics-token';

/** /metrics counts failed requests by reason, calls refused for a batch's budget, and failed imports (alert rules read them). */
describe('failures by reason in /metrics', () => {
  const w = useWorld({ latencyMs: 2, faults: { error5xx: 1 } });
  const a = useApi(w, { CHATQ_API_TOKENS: TOKEN });

  it('a request that fails is counted under its reason; the budget and import series are there from the start', async () => {
    const scrape = async () =>
      (await fetch(`${a.api.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
    const before = await scrape();
    expect(before).toContain('chatq_budget_refusals_total 0');
    expect(before).toContain('chatq_import_failures_total 0');
    expect(before).toContain('# TYPE chatq_request_failures_total counter');
    await w.startWorker({ CHATQ_MAX_ATTEMPTS: '1' });
    const submitted = await w.env.submit(
      Array.from({ length: 3 }, (_, i) =>
        JSON.stringify({ user: `f${i}`, model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }),
      ),
    );
    const batch = await waitForBatch(w.env, submitted.batchId);
    expect(batch.failed).toBe(3);
    // The fold writes the counters within a second or so.
    let after = '';
    for (let i = 0; i < 50 && !after.includes('reason="http_503"} 3'); i++) {
      await new Promise((r) => setTimeout(r, 100));
      after = await scrape();
    }
    expect(after).toContain('chatq_request_failures_total{reason="http_503"} 3');
  });
});
