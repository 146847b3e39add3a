import { describe, expect, it } from 'vitest';
import { getUsage } from '../../src/shared/read-store.js';
import { cuttableLink } from '../helpers/cuttable-link.js';
import { startWorker, useWorld } from '../helpers/in-process-worker.js';
import { REDIS_URL, waitFor, waitForBatch } from '../helpers/test-env.js';

const SEQ = /\[seq (\d+)\]/;

describe('a worker cut off from Redis while its calls run', () => {
  // Calls of 6 s, a lock of 2 s: the first worker's locks lapse while its calls are still at the upstream.
  const w = useWorld({ latencyMs: 6_000, jitterMs: 0, recordMessages: false });

  it("never lets another worker call a user whose call may still be running: no overlap, order kept, each request counted once", async () => {
    const users = 8;
    const turns = 3;
    const lines = [];
    for (let t = 0; t < turns; t++) for (let u = 0; u < users; u++) lines.push(JSON.stringify({ custom_id: `u${u}-t${t}`, user: `cut-${u}`, model: 'gpt-4o-mini', messages: [{ role: 'user', content: `[seq ${t}] hello` }] }));
    const submitted = await w.env.submit(lines);
    const url = new URL(REDIS_URL);
    const link = await cuttableLink({ host: url.hostname, port: Number(url.port || 6379) });
    const vars = { CHATQ_LOCK_MS: '2000', CHATQ_TIMEOUT_MS: '10000', CHATQ_RECONCILE_MS: '500', CHATQ_CONCURRENCY: '20', CHATQ_LANE_SLICE_MS: '0' };
    const first = await startWorker(w.env.config({ ...vars, REDIS_URL: link.url }), w.sim.url);
    let second: Awaited<ReturnType<typeof startWorker>> | undefined;
    try {
      // The first worker's calls are in flight; then it loses Redis for longer than its lock, and another worker runs.
      await waitFor('calls in flight', async () => Object.values(w.sim.stats().users).filter((u) => u.inFlight > 0).length >= users, 20_000, 20);
      link.cut();
      second = await startWorker(w.env.config(vars), w.sim.url);
      await new Promise((r) => setTimeout(r, 12_000));
      link.heal();
      const batch = await waitForBatch(w.env, submitted.batchId, 120_000);
      expect(batch).toMatchObject({ total: users * turns, succeeded: users * turns });
      const stats = w.sim.stats();
      console.log('CUT', JSON.stringify(Object.values(stats.users).map((u) => u.arrivals)));
      expect(stats.overlaps).toBe(0);
      expect(stats.outOfOrder).toBe(0);
      for (const u of Object.values(stats.users)) {
        const seqs = u.arrivals.map((a) => Number(SEQ.exec(a)![1]));
        // In order; a turn may be sent again (a repeat: the cut-off worker's call ended at the upstream unseen), never after a later one.
        expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
      }
      expect((await getUsage(w.env.redis, w.env.keys, 'default', 'batch', submitted.batchId)).requests).toBe(users * turns);
    } finally {
      link.heal();
      await second?.close();
      await first.close();
      await link.close();
    }
  });
});
