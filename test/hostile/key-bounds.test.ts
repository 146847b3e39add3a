import { describe, expect, it } from 'vitest';
import { listUsage } from '../../src/shared/batches/read-store.js';
import { ALL_PROJECTS } from '../../src/shared/scope.js';
import { usageReport } from '../../src/shared/reports/usage-report.js';
import { applyUsageRetention } from '../../src/worker/maintenance/usage-retention.js';
import { useWorld } from '../helpers/in-process-worker.js';
import { waitForBatch } from '../helpers/test-env.js';

describe('every key has a bound', () => {
  const w = useWorld();

  it('model names past 200 distinct ones are counted as "other"; old days roll up into months; stale users drop out', async () => {
    const lines = Array.from({ length: 210 }, (_, i) =>
      JSON.stringify({ user: `u${i}`, model: `made-up-model-${i}`, messages: [{ role: 'user', content: 'hi' }] }),
    );
    const submitted = await w.env.submit(lines);
    await w.startWorker({ CHATQ_CONCURRENCY: '50' });
    await waitForBatch(w.env, submitted.batchId);
    const models = await listUsage(w.env.redis, w.env.keys, ALL_PROJECTS, 'model');
    expect(models).toHaveLength(201);
    expect(models.find((m) => m.key === 'other')!.requests).toBe(10);
    expect(models.reduce((a, m) => a + m.requests, 0)).toBe(210);

    const byMonthBefore = await usageReport(w.env.redis, w.env.keys, ALL_PROJECTS, { by: 'month' });
    // A hundred days later, with 90 days of daily detail and results kept for an hour:
    const later = Date.now() + 100 * 86_400_000;
    const report = await applyUsageRetention(w.env.redis, w.env.keys, { ttlS: 3600, usageDays: 90 }, later);
    expect(report).toMatchObject({ rolledUpDays: 1, droppedUsers: 210, droppedBatches: 1 });
    expect(await listUsage(w.env.redis, w.env.keys, ALL_PROJECTS, 'day')).toEqual([]);
    expect(await usageReport(w.env.redis, w.env.keys, ALL_PROJECTS, { by: 'month' })).toEqual(byMonthBefore);
    expect(await listUsage(w.env.redis, w.env.keys, ALL_PROJECTS, 'user')).toEqual([]);
    // Models stay (bounded), and add up to the same.
    expect((await listUsage(w.env.redis, w.env.keys, ALL_PROJECTS, 'model')).reduce((a, m) => a + m.requests, 0)).toBe(
      210,
    );
  });
});
