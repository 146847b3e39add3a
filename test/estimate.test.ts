import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CASES, estimateAndRun } from './helpers/estimate-runs.js';

describe('chatq estimate brackets a real run on the simulator', () => {
  const dir = mkdtempSync(join(tmpdir(), 'chatq-estimate-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('RPM-, TPM-, concurrency- and chain-bound batches: what binds, the real cost within the range, no run faster than its bound', async () => {
    // The four runs side by side: each has its own prefix (its own limits), simulator and worker.
    const runs = await Promise.all(CASES.map((c) => estimateAndRun(c, dir)));
    for (const [i, r] of runs.entries()) {
      const c = CASES[i]!;
      // A dry run says the same as the estimate, and enqueues nothing.
      expect(r.dryRun.code, r.dryRun.stderr).toBe(0);
      expect(r.dryRun.out, c.name).toMatchObject({ requests: c.lines.length, binds: r.estimate.binds });
      expect(r.batchesAfterDryRun, c.name).toBe(0);
      expect(r.batch.status, c.name).toBe('completed');
      expect(r.estimate.binds, c.name).toBe(c.binds);
      expect(r.estimate.requests, c.name).toBe(c.lines.length);
      expect(r.realCostNano, c.name).toBeGreaterThanOrEqual(r.estimate.costNano.low);
      expect(r.realCostNano, c.name).toBeLessThanOrEqual(r.estimate.costNano.high);
      // The limit or the latency that binds holds the run back at least this long, however idle the machine: a lower
      // bound only (how close the real time comes to the estimate on a quiet machine is bench/estimate.ts's figure).
      expect(r.realMs / r.estimate.durationMs, c.name).toBeGreaterThanOrEqual(0.75);
    }
  }, 120_000);
});
