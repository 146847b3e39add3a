import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '../src/simulator/simulator-server.js';
import { getUsage, readBatchRequests } from '../src/shared/batches/read-store.js';
import { createTestEnv, spawnWorker, waitForBatch, type TestEnv, type WorkerProcess } from './helpers/test-env.js';

const USERS = 200;
const TURNS = 10;

/** Turn t of every user, then turn t+1 of every user...: lanes interleave in the file as they would in real input. */
function interleavedLines(users: number, turns: number): string[] {
  const lines: string[] = [];
  for (let t = 0; t < turns; t++) {
    for (let u = 0; u < users; u++) {
      lines.push(
        JSON.stringify({
          custom_id: `u${u}-t${t}`,
          user: `user-${u}@example.com`,
          model: 'gpt-4o-mini',
          messages: [{ role: 'user', content: `message [seq ${t}] from user ${u}` }],
        }),
      );
    }
  }
  return lines;
}

describe('per-user lanes under load', () => {
  let env: TestEnv;
  let sim: Simulator;
  let workers: WorkerProcess[] = [];

  beforeEach(async () => {
    env = await createTestEnv();
    sim = await startSimulator({ latencyMs: 15, jitterMs: 12 });
  });

  afterEach(async () => {
    for (const w of workers) w.child.kill('SIGKILL');
    workers = [];
    await sim.close();
    await env.cleanup();
  });

  it('runs 2,000 requests of 200 users through two worker processes: strict order, no overlap, tokens match', async () => {
    const workerEnv = env.env({ CHATQ_BASE_URL: sim.url, CHATQ_CONCURRENCY: '50' });
    workers = [spawnWorker(workerEnv), spawnWorker(workerEnv)];
    const submitted = await env.submit(interleavedLines(USERS, TURNS));
    expect(submitted.acceptedRequests).toBe(USERS * TURNS);

    const batch = await waitForBatch(env, submitted.batchId);
    expect(batch.succeeded).toBe(USERS * TURNS);
    expect(batch.failed).toBe(0);

    const stats = sim.stats();
    expect(stats.overlaps).toBe(0);
    expect(stats.outOfOrder).toBe(0);
    expect(Object.keys(stats.users)).toHaveLength(USERS);
    for (const u of Object.values(stats.users)) {
      expect(u.arrivals.map((a) => Number(/\[seq (\d+)\]/.exec(a)![1]))).toEqual([...Array(TURNS).keys()]);
    }
    expect(stats.calls).toBe(USERS * TURNS);

    let results = 0;
    for await (const r of readBatchRequests(env.redis, env.keys, submitted.batchId)) {
      expect(r.status).toBe('succeeded');
      expect(r.response).not.toBeNull();
      results += 1;
    }
    expect(results).toBe(USERS * TURNS);

    const usage = await getUsage(env.redis, env.keys, 'default', 'batch', submitted.batchId);
    expect(usage.requests).toBe(USERS * TURNS);
    expect(usage.prompt_tokens).toBe(stats.tokens.prompt);
    expect(usage.completion_tokens).toBe(stats.tokens.completion);
    expect(usage.total_tokens).toBe(stats.tokens.total);
    expect(usage.cost_nano).toBeGreaterThan(0);
  });
});
