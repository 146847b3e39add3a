import { describe, expect, it } from 'vitest';
import { useWorld } from './helpers/in-process-worker.js';
import { waitForBatch } from './helpers/test-env.js';

describe('memory-aware pacing (turn_gap_ms)', () => {
  const w = useWorld({ latencyMs: 20, jitterMs: 10 });

  it("a user's next turn starts no sooner than turn_gap_ms after the previous call ended; other users run meanwhile", async () => {
    const GAP = 400;
    const scripts = Array.from({ length: 6 }, (_, u) =>
      JSON.stringify({
        script_id: `s${u}`,
        user: `pacer-${u}`,
        model: 'gpt-4o-mini',
        turn_gap_ms: GAP,
        turns: ['My name is Ada.', 'I live in Lyon.', 'What is my name?'],
      }),
    );
    // Lines without a gap of their own take the batch's --turn-gap-ms (here none: they run back to back).
    const plain = Array.from({ length: 4 }, (_, u) =>
      JSON.stringify({ user: `plain-${u}`, model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }),
    );
    const submitted = await w.env.submit([...scripts, ...plain]);
    await w.startWorker({ CHATQ_CONCURRENCY: '4' });
    const batch = await waitForBatch(w.env, submitted.batchId);
    expect(batch).toMatchObject({ succeeded: 22, failed: 0 });
    const stats = w.sim.stats();
    const gaps = Object.entries(stats.users)
      .filter(([, u]) => u.calls > 1)
      .map(([, u]) => u.minGapMs!);
    expect(gaps).toHaveLength(6);
    // Every gap the simulator saw between one call's end and the same user's next arrival: at least turn_gap_ms.
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(GAP - 5);
    expect(stats.overlaps).toBe(0);
    // A user's gap holds no call slot: more scripts were mid-way at once (first call to last call's end) than the
    // four slots. Were gaps held in slots, no more than four could be.
    const spans = Object.entries(stats.users)
      .filter(([, u]) => u.calls > 1)
      .map(([, u]) => [u.arrivedAt[0]!, u.lastEndAt!] as const);
    const midway = Math.max(...spans.map(([at]) => spans.filter(([from, to]) => from <= at && at < to).length));
    expect(midway).toBeGreaterThan(4);
    // The memory is there when asked.
    expect(stats.outOfOrder).toBe(0);
  });
});
