import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/test-env.js';
import { conversationLines, expectInvariants, useNetWorld } from '../helpers/net-world.js';

describe('network (f): an importer and Redis apart mid-import', () => {
  const w = useNetWorld();

  it('ends the batch failed, and `enqueue --batch B` completes it with nothing half-imported', async () => {
    const lines = conversationLines(250, 40, 'imp');
    const file = join(tmpdir(), `chatq-net-import-${process.pid}-${Date.now()}.jsonl`);
    writeFileSync(file, `${lines.join('\n')}\n`);
    const importer = await w.lab.host('importer');
    const workerHost = await w.lab.host('worker');
    const vars = { CHATQ_RECONCILE_MS: '500', CHATQ_LOCK_MS: '2000' };
    const first = w.chatq(importer, ['enqueue', file, '--on-import-error', 'keep'], vars);
    const batchId = await waitFor(
      'the import to begin',
      async () => (await w.env.redis.srandmember(w.env.keys.importing)) ?? undefined,
      20_000,
      20,
    );
    await waitFor(
      'part of the input enqueued',
      async () => (await w.env.redis.llen(w.env.keys.batchRequests(batchId))) > 1_000,
      20_000,
      20,
    );
    await importer.cut(w.redisHost.ip);
    const enqueuedAtCut = await w.env.redis.llen(w.env.keys.batchRequests(batchId));
    expect(enqueuedAtCut).toBeLessThan(lines.length);
    // Workers elsewhere go on; the import's lease lapses, and their reconciler ends the batch.
    w.chatq(workerHost, ['worker'], { ...vars, CHATQ_BASE_URL: w.sim.url, CHATQ_CONCURRENCY: '50' });
    const failed = await waitFor(
      'the batch to fail',
      async () => {
        const b = await w.env.batch(batchId);
        return b.status === 'failed' ? b : undefined;
      },
      90_000,
      250,
    );
    expect(failed.importError).toMatchObject({ code: 'import_interrupted' });
    expect(await importer.dropped()).toBeGreaterThan(0);
    await importer.heal();
    // The cut-off importer learns its import ended, says how to complete it, and writes nothing more.
    expect(await first.exited).not.toBe(0);
    expect(first.output()).toContain(`--batch ${batchId}`);
    const resumed = w.chatq(importer, ['enqueue', file, '--batch', batchId], vars);
    expect(await resumed.exited, resumed.output()).toBe(0);
    await w.waitForBatch(batchId, 180_000);
    await expectInvariants(w, batchId, lines.length);
  }, 300_000);
});
